"""MLflow runs for job steps: one parent run per job and date, a nested run per step."""

from __future__ import annotations

import contextlib
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow

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
    with mlflow.start_run(
        experiment_id=experiment, run_name=f"{ctx.job} {ctx.business_date}", tags=_run_tags(ctx)
    ) as parent:
        run_id = parent.info.run_id
    io.write_json({"run_id": run_id}, parent_file)
    return str(run_id)


def _run_tags(ctx: StepContext) -> dict[str, str]:
    return {"business_date": ctx.business_date, "job": ctx.job, "git_commit": _git_commit()}


@contextlib.contextmanager
def step_run(ctx: StepContext, name: str) -> Iterator[mlflow.ActiveRun]:
    """A nested MLflow run for one step, under the job's parent run for this date."""
    parent_id = parent_run_id(ctx)
    experiment = registry.ensure_experiment(ctx.job, ctx.settings.layout.artifacts)
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
