"""The daily job and the refresh job: their steps, bound to a dataset and a business date.

The daily job, for a business date D (the last day whose sales have arrived):
ingest → recover → live → train → evaluate → register → gate → forecast → aggregates.
Each step is resumable (see :mod:`pipelines.jobs.runner`) and logs a nested MLflow run
under one parent run per job and date (:mod:`pipelines.jobs.tracking`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.jobs.data_steps import DayInputs, ingest_step, recover_step
from pipelines.jobs.dataset import ensure_dataset, resolve_business_date
from pipelines.jobs.evaluate_step import evaluate_step
from pipelines.jobs.gate import gate_step, register_step
from pipelines.jobs.live_step import live_step
from pipelines.jobs.publish_steps import aggregates_step, forecast_step
from pipelines.jobs.runner import JobResult, Step, StepContext, run_job
from pipelines.jobs.tracking import close_killed_runs, fail_parent_run, finish_parent_run
from pipelines.jobs.train_step import train_step
from pipelines.serving import registry
from pipelines.settings import Settings

DAILY_JOB = "daily"
REFRESH_JOB = "refresh"


def build_steps(root: Path, day: date, *, retrain: bool, accept_day: bool = False) -> list[Step]:
    """The daily job's steps, bound to a dataset and a business date.

    ``live`` scores yesterday's served forecasts before any model step, so a rollback it
    makes (``gate.on_live_drop``) is what today's candidate is judged against.
    """
    paths = DayInputs(root, day, accept_day=accept_day)
    steps = model_steps(paths, lambda ctx: train_step(ctx, paths, retrain=retrain), retrain=retrain)
    return [
        *steps[:2],
        Step("live", lambda ctx: live_step(ctx, paths)),
        *steps[2:],
        Step("forecast", lambda ctx: forecast_step(ctx, paths)),
        Step("aggregates", lambda ctx: aggregates_step(ctx, paths)),
    ]


def build_refresh_steps(root: Path, day: date) -> list[Step]:
    """The ``freshcast refresh`` job's steps: the daily job's, up to the gate, with a train
    step that only refreshes the champion (no fallback to a full fit)."""
    paths = DayInputs(root, day)
    return model_steps(paths, lambda ctx: train_step(ctx, paths, retrain=False, refresh_only=True))


def model_steps(
    paths: DayInputs, train: Callable[[StepContext], dict[str, Any]], *, retrain: bool = False
) -> list[Step]:
    """Ingest to gate: what the daily job and the refresh job share. ``retrain`` refits
    stage 1 too, instead of recovering only the new days."""
    return [
        Step("ingest", lambda ctx: ingest_step(ctx, paths)),
        Step("recover", lambda ctx: recover_step(ctx, paths, retrain=retrain)),
        Step("train", train),
        Step("evaluate", lambda ctx: evaluate_step(ctx, paths)),
        Step("register", lambda ctx: register_step(ctx, paths)),
        Step("gate", lambda ctx: gate_step(ctx)),
    ]


def daily_job(
    settings: Settings,
    *,
    business_date: date | None = None,
    force: bool = False,
    retrain: bool = False,
    accept_days: Collection[date] = (),
) -> JobResult:
    """Run the daily job for ``business_date`` (default: the data's last train day).

    ``accept_days``: days an operator accepts although they fail the data-quality gate.
    """
    registry.configure(settings.tracking_uri)
    root = ensure_dataset(settings)
    day = resolve_business_date(root, business_date)
    steps = build_steps(root, day, retrain=retrain, accept_day=day in accept_days)
    return _run_tracked(settings, DAILY_JOB, day, steps, force=force)


def refresh_job(
    settings: Settings, *, business_date: date | None = None, force: bool = False
) -> JobResult:
    """``freshcast refresh``: update the champion with replay through ``business_date``,
    register the result as challenger and gate it (the daily job's steps up to the gate)."""
    registry.configure(settings.tracking_uri)
    root = ensure_dataset(settings)
    day = resolve_business_date(root, business_date)
    return _run_tracked(settings, REFRESH_JOB, day, build_refresh_steps(root, day), force=force)


def _run_tracked(
    settings: Settings, job: str, day: date, steps: list[Step], *, force: bool
) -> JobResult:
    """Run a job's steps with its MLflow bookkeeping: a killed run's runs closed first, the
    parent run FAILED on a failed step and FINISHED by the last step."""
    return run_job(
        settings,
        job=job,
        business_date=day.isoformat(),
        steps=[*steps, Step("finish", finish_parent_run)],
        force=force,
        on_start=close_killed_runs,
        on_failure=fail_parent_run,
    )
