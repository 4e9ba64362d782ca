"""MLflow runs for job steps: one parent run per job and date, a nested run per step.

The parent run stays RUNNING while the job runs and is FINISHED (or FAILED) when it ends;
runs a killed job left RUNNING are marked KILLED when the next job starts, under the lock.
"""

from __future__ import annotations

import contextlib
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pipelines.data import io
from pipelines.jobs.runner import StepContext
from pipelines.serving import registry


def parent_run_id(ctx: StepContext) -> str:
    """The MLflow parent run of this job and date, created on first use and then reused."""
    registry.configure(ctx.settings.tracking_uri)
    parent_file = ctx.marker_dir / "_parent_run.json"
    if parent_file.is_file():
        return str(io.read_json(parent_file)["run_id"])
    experiment = registry.ensure_experiment(ctx.job, ctx.settings.layout.artifacts)
    # Created, not started: a started run is ended (FINISHED) when its block closes.
    parent = mlflow.MlflowClient().create_run(
        experiment, run_name=f"{ctx.job} {ctx.business_date}", tags=_run_tags(ctx)
    )
    io.write_json({"run_id": parent.info.run_id}, parent_file)
    return str(parent.info.run_id)


def _run_tags(ctx: StepContext) -> dict[str, str]:
    return {"business_date": ctx.business_date, "job": ctx.job, "git_commit": _git_commit()}


@contextlib.contextmanager
def step_run(ctx: StepContext, name: str) -> Iterator[mlflow.ActiveRun]:
    """A nested MLflow run for one step, under the job's parent run for this date."""
    parent_id = parent_run_id(ctx)
    experiment = registry.ensure_experiment(ctx.job, ctx.settings.layout.artifacts)
    child = mlflow.MlflowClient().create_run(
        experiment, run_name=name, tags={**_run_tags(ctx), MLFLOW_PARENT_RUN_ID: parent_id}
    )
    # Only the step's own run is started: its end (FINISHED, or FAILED on an error) leaves
    # the parent RUNNING until the job ends.
    with warnings.catch_warnings(), mlflow.start_run(run_id=child.info.run_id) as run:
        # MLflow hints about integer columns in logged tables; ours never hold nulls.
        warnings.filterwarnings("ignore", message=".*Integer columns.*")
        yield run


def finish_parent_run(ctx: StepContext) -> dict[str, Any]:
    """The job's last step: its parent run is FINISHED only now."""
    _end_parent(ctx, "FINISHED")
    return {}


def fail_parent_run(ctx: StepContext) -> None:
    """A step failed: the job's parent run is FAILED (a resumed run reopens it)."""
    _end_parent(ctx, "FAILED")


def _end_parent(ctx: StepContext, status: str) -> None:
    parent_file = ctx.marker_dir / "_parent_run.json"
    if parent_file.is_file():
        registry.configure(ctx.settings.tracking_uri)
        mlflow.MlflowClient().set_terminated(io.read_json(parent_file)["run_id"], status=status)


def close_killed_runs(ctx: StepContext) -> list[str]:
    """Mark KILLED every run of this job's experiment still RUNNING; reopen this date's parent.

    Called when a job starts, under the job lock: no other job is running, so a RUNNING run
    belongs to a job that was killed. The parent of the date being resumed is set RUNNING
    again. Returns the ids of the runs marked KILLED.
    """
    registry.check_reachable(ctx.settings.tracking_uri)
    registry.configure(ctx.settings.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(ctx.job)
    if experiment is None:
        return []
    parent_file = ctx.marker_dir / "_parent_run.json"
    resumed = str(io.read_json(parent_file)["run_id"]) if parent_file.is_file() else None
    running = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    killed = [r.info.run_id for r in running if r.info.run_id != resumed]
    for run_id in killed:
        client.set_terminated(run_id, status="KILLED")
    if resumed is not None:
        client.update_run(resumed, status="RUNNING")
    return killed


def _git_commit() -> str:
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
