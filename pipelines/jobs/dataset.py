"""The job's dataset: the configured one, or the embedded default simulated on first use."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console

from pipelines.data import io
from pipelines.data.validate import ValidationReport, render_report, validate_dataset
from pipelines.errors import DataError, FreshcastError
from pipelines.settings import Settings

# The embedded default: big enough to look like the real thing, small enough that a
# first `make run` finishes in a few minutes on 2 cores.
DEFAULT_SERIES = 1000
DEFAULT_SEED = 2024
# The longest feature window: a business date needs this many days before it.
MIN_HISTORY_DAYS = 28

console = Console(stderr=True)


def ensure_dataset(settings: Settings) -> Path:
    """The dataset folder to use, simulating the embedded default when there is none.

    A real dataset in ``data/raw/`` or at ``FRESHCAST_DATA`` always wins.
    """
    root = settings.data_dir
    if io.has_dataset(root):
        return root
    if root.resolve() != settings.layout.raw.resolve():
        raise DataError("no train.parquet here (FRESHCAST_DATA points at it)", file=root)
    from pipelines.data.simulate import SimulationConfig, write_simulation

    console.print(
        f"no dataset in {root}: simulating the default ({DEFAULT_SERIES:,} series, seed {DEFAULT_SEED})"
    )
    write_simulation(SimulationConfig(series=DEFAULT_SERIES, seed=DEFAULT_SEED), root)
    return root


def ingest(root: Path) -> ValidationReport:
    """Validate a dataset; schema errors stop the job with the report as the message."""
    report = validate_dataset(root)
    if not report.ok:
        raise DataError("the dataset is invalid:\n" + render_report(report), file=root)
    return report


def resolve_business_date(root: Path, requested: date | None) -> date:
    """The business date: as requested, or the last train day. It must lie in the data."""
    days = io.scan_days(root).select(pl.col("dt").min().alias("lo"), pl.col("dt").max().alias("hi"))
    lo, hi = days.collect().row(0)
    train_last = io.scan_split(root, "train").select(pl.col("dt").max()).collect().item()
    chosen = requested or train_last
    first_usable = lo + timedelta(days=MIN_HISTORY_DAYS)
    if hi < first_usable:
        held = (hi - lo).days + 1
        raise DataError(
            f"the data holds {held} day{'s' if held != 1 else ''} ({lo} .. {hi}); the job needs "
            f"at least "
            f"{MIN_HISTORY_DAYS + 1}: {MIN_HISTORY_DAYS} days of history before the business date",
            file=root,
        )
    if not first_usable <= chosen <= hi:
        raise FreshcastError(
            f"business date {chosen} is outside the data's usable range "
            f"{first_usable} .. {hi} ({MIN_HISTORY_DAYS} days of history are needed)"
        )
    return chosen
