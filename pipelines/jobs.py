"""One function per job. The CLI and the scheduler call these; they do no parsing."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipelines import io
from pipelines.errors import DataError
from pipelines.settings import Settings
from pipelines.validate import ValidationReport, render_report, validate_dataset

# The embedded default: big enough to look like the real thing, small enough that a
# first `make run` finishes in a few minutes on 2 cores.
DEFAULT_SERIES = 1000
DEFAULT_SEED = 2024

console = Console(stderr=True)


def ensure_dataset(settings: Settings) -> Path:
    """The dataset folder to use, simulating the embedded default when there is none.

    A real dataset in ``data/raw/`` or at ``FRESHCAST_DATA`` always wins.
    """
    root = settings.data_dir
    if io.has_dataset(root):
        return root
    if root != settings.work_dir / "raw":
        raise DataError("no train.parquet here (FRESHCAST_DATA points at it)", file=root)
    from pipelines.simulate import SimulationConfig, write_simulation

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
