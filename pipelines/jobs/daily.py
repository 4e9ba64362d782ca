"""One function per job. The CLI and the scheduler call these; they parse nothing.

The daily job, for a business date D (the last day whose sales have arrived):
ingest → recover → train → evaluate → register → gate → forecast → aggregates.
Each step is resumable (see :mod:`pipelines.jobs.runner`) and logs a nested MLflow run under
one parent run per job and date.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from rich.console import Console

from pipelines.serving import registry
from pipelines.data import io
from pipelines.errors import DataError, FreshcastError
from pipelines.settings import Settings
from pipelines.jobs.runner import JobResult, Step, StepContext, run_job
from pipelines.data.validate import ValidationReport, render_report, validate_dataset

# The embedded default: big enough to look like the real thing, small enough that a
# first `make run` finishes in a few minutes on 2 cores.
DEFAULT_SERIES = 1000
DEFAULT_SEED = 2024
DAILY_JOB = "daily"
REFRESH_JOB = "refresh"

console = Console(stderr=True)


def ensure_dataset(settings: Settings) -> Path:
    """The dataset folder to use, simulating the embedded default when there is none.

    A real dataset in ``data/raw/`` or at ``FRESHCAST_DATA`` always wins.
    """
    root = settings.data_dir
    if io.has_dataset(root):
        return root
    if root.resolve() != (settings.work_dir / "raw").resolve():
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


def scan_all_days(root: Path) -> pl.LazyFrame:
    """Train and (when present) eval rows as one typed daily frame."""
    frames = [io.scan_split(root, "train")]
    if io.split_path(root, "eval") is not None:
        frames.append(io.scan_split(root, "eval"))
    return pl.concat(frames, how="vertical")


def resolve_business_date(root: Path, requested: date | None) -> date:
    """The business date: as requested, or the last train day. It must lie in the data."""
    days = scan_all_days(root).select(
        pl.col("dt").min().alias("lo"), pl.col("dt").max().alias("hi")
    )
    lo, hi = days.collect().row(0)
    train_last = io.scan_split(root, "train").select(pl.col("dt").max()).collect().item()
    chosen = requested or train_last
    if not lo + timedelta(days=28) <= chosen <= hi:
        raise FreshcastError(
            f"business date {chosen} is outside the data's usable range "
            f"{lo + timedelta(days=28)} .. {hi} (28 days of history are needed)"
        )
    return chosen


# -- MLflow runs for steps ------------------------------------------------------------------


def parent_run_id(ctx: StepContext) -> str:
    """The MLflow parent run of this job and date, created on first use and then reused."""
    registry.configure(ctx.settings.tracking_uri)
    parent_file = ctx.marker_dir / "_parent_run.json"
    if parent_file.is_file():
        return str(io.read_json(parent_file)["run_id"])
    experiment = registry.ensure_experiment(ctx.job, ctx.settings.mlruns_dir / "artifacts")
    with mlflow.start_run(
        experiment_id=experiment, run_name=f"{ctx.job} {ctx.business_date}", tags=_run_tags(ctx)
    ) as parent:
        run_id = parent.info.run_id
    io.write_json({"run_id": run_id}, parent_file)
    return run_id


def _run_tags(ctx: StepContext) -> dict[str, str]:
    return {"business_date": ctx.business_date, "job": ctx.job, "git_commit": _git_commit()}


@contextlib.contextmanager
def step_run(ctx: StepContext, name: str) -> Iterator[mlflow.ActiveRun]:
    """A nested MLflow run for one step, under the job's parent run for this date."""
    parent_id = parent_run_id(ctx)
    experiment = registry.ensure_experiment(ctx.job, ctx.settings.mlruns_dir / "artifacts")
    with (
        warnings.catch_warnings(),
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            run_name=name, nested=True, experiment_id=experiment, tags=_run_tags(ctx)
        ) as run,
    ):
        # MLflow hints about integer columns in logged tables; ours never hold nulls.
        warnings.filterwarnings("ignore", message=".*Integer columns.*")
        yield run


def finish_parent_run(ctx: StepContext) -> dict[str, Any]:
    parent_file = ctx.marker_dir / "_parent_run.json"
    if parent_file.is_file():
        registry.configure(ctx.settings.tracking_uri)
        mlflow.MlflowClient().set_terminated(io.read_json(parent_file)["run_id"], status="FINISHED")
    return {}


def _git_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


# -- the daily job --------------------------------------------------------------------------


def daily_job(
    settings: Settings,
    *,
    business_date: date | None = None,
    force: bool = False,
    retrain: bool = False,
) -> JobResult:
    """Run the daily job for ``business_date`` (default: the data's last train day)."""
    from pipelines.jobs import steps as daily_steps

    registry.configure(settings.tracking_uri)
    root = ensure_dataset(settings)
    day = resolve_business_date(root, business_date)
    steps = daily_steps.build_steps(root, day, retrain=retrain)
    steps.append(Step("finish", finish_parent_run))
    return run_job(settings, job=DAILY_JOB, business_date=day.isoformat(), steps=steps, force=force)


def refresh_job(
    settings: Settings, *, business_date: date | None = None, force: bool = False
) -> JobResult:
    """``freshcast refresh``: update the champion with replay through ``business_date``,
    register the result as challenger and gate it (the daily job's steps up to the gate)."""
    from pipelines.jobs import steps as daily_steps

    registry.configure(settings.tracking_uri)
    root = ensure_dataset(settings)
    day = resolve_business_date(root, business_date)
    steps = daily_steps.build_refresh_steps(root, day)
    steps.append(Step("finish", finish_parent_run))
    return run_job(
        settings, job=REFRESH_JOB, business_date=day.isoformat(), steps=steps, force=force
    )


# -- human overrides of the gate -----------------------------------------------------------


def _log_override(settings: Settings, action: str, version: str, reason: str) -> None:
    experiment = registry.ensure_experiment("overrides", settings.mlruns_dir / "artifacts")
    with mlflow.start_run(experiment_id=experiment, run_name=f"{action} v{version}"):
        mlflow.set_tags({"action": action, "version": version, "reason": reason})
        mlflow.log_param("version", version)


def promote_version(settings: Settings, version: int, reason: str) -> str:
    """Make ``version`` champion by hand, bypassing the gate; the override is logged."""
    registry.configure(settings.tracking_uri)
    versions = registry.list_versions()
    if versions.is_empty() or version not in versions["version"].to_list():
        raise FreshcastError(f"no registered version {version} of {registry.MODEL_NAME}")
    registry.set_champion(version)
    _log_override(settings, "promote", str(version), reason)
    return str(version)


def rollback_champion(settings: Settings, reason: str) -> str:
    """Point ``champion`` back at the previous champion; the override is logged."""
    registry.configure(settings.tracking_uri)
    previous = registry.rollback_champion()
    if previous is None:
        raise FreshcastError("there is no previous champion to roll back to")
    _log_override(settings, "rollback", previous, reason)
    return previous
