"""The daily job's data steps for a business date D: ingest (validate) and recover.

History is every row with ``dt ≤ D``; no step reads a target after D.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from rich.console import Console

from models.constants import HORIZON
from pipelines.data import io
from pipelines.data.quality import QualityBounds, check_day, day_figures
from pipelines.errors import DataQualityError
from pipelines.jobs.dataset import ingest
from pipelines.jobs.runner import StepContext
from pipelines.jobs.tracking import step_run
from pipelines.serving import registry

console = Console(stderr=True)


@dataclass(frozen=True)
class DayInputs:
    """The dataset folder and the business date a job's steps work on."""

    root: Path
    day: date
    # An operator overruled the data-quality gate for this day (``run --accept-day``).
    accept_day: bool = False

    @property
    def tag(self) -> str:
        return self.day.isoformat()


def history_through(paths: DayInputs) -> pl.LazyFrame:
    return io.scan_days(paths.root).filter(pl.col("dt") <= paths.day)


def future_days(paths: DayInputs) -> pl.LazyFrame:
    end = paths.day + timedelta(days=HORIZON)
    return io.scan_days(paths.root).filter((pl.col("dt") > paths.day) & (pl.col("dt") <= end))


def recovered_history(ctx: StepContext, paths: DayInputs) -> pl.DataFrame:
    """History ≤ D with stage-1 ``demand_amount`` and ``imputed_hours`` joined on."""
    recovered = io.scan_parquet(ctx.settings.layout.recovered(paths.tag)).select(
        "series_id", "dt", "demand_amount", "imputed_hours"
    )
    return history_through(paths).join(recovered, on=["series_id", "dt"], how="left").collect()


def ingest_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Validate the dataset, then judge day D against its trailing weeks (the quality gate).

    A day that fails the gate stops the job here, before anything is recovered, trained,
    registered or forecast, unless an operator accepted it (logged as such).
    """
    report = ingest(paths.root)
    figures = day_figures(io.scan_days(paths.root), paths.day)
    checks = check_day(figures, paths.day, QualityBounds(**ctx.settings.quality.model_dump()))
    failed = [c for c in checks if not c.ok]
    if failed and not paths.accept_day:
        raise DataQualityError(paths.day, failed)
    if failed:
        console.print(
            f"[bold yellow]warning:[/] {paths.day} fails the data-quality gate and was accepted "
            "by the operator (--accept-day):\n" + "\n".join(c.describe() for c in failed),
            highlight=False,
        )
    with step_run(ctx, "ingest"):
        train = report.summary.get("train", {})
        mlflow.log_metrics(
            {"data/rows": train.get("rows", 0), "data/series": train.get("series", 0)}
        )
        mlflow.log_metrics({f"quality/{c.check}": c.value for c in checks})
        mlflow.set_tags(
            {
                "quality/passed": str(not failed).lower(),
                "quality/accepted_by_operator": str(bool(failed)).lower(),
            }
        )
        mlflow.log_dict(report.to_dict(), "validation.json")
    return {
        "summary": json.loads(json.dumps(report.summary, default=str)),
        "quality": [asdict(c) | {"day": str(c.day)} for c in checks],
        "accepted_by_operator": bool(failed),
        # What was validated: a resumed run validates again if a file changed since.
        "inputs": {
            str(f): io.file_stamp(f)
            for f in (io.split_path(paths.root, s) for s in ("train", "eval"))
            if f is not None
        },
    }


def recover_step(ctx: StepContext, paths: DayInputs, *, retrain: bool = False) -> dict[str, Any]:
    """Stage 1 through D: only the days new since the last recovery, when its state allows
    (:mod:`pipelines.recovery.incremental`); a full recovery (refit) otherwise, or on
    ``retrain``."""
    from pipelines.recovery.incremental import recover_history

    method = ctx.settings.recovery_method
    history = history_through(paths)
    result = recover_history(
        history, day=paths.day, method=method, layout=ctx.settings.layout, refit=retrain
    )
    recovered = result.frame
    observed = history.select("series_id", "dt", "sale_amount").collect()
    # Recovered rows are the history's rows, so lost sales are a difference of two sums;
    # joining (and sorting) 4.5 M rows with their hourly lists cost ~7 s on the full split,
    # as much as an incremental recovery itself.
    lost = float(recovered["demand_amount"].sum()) - float(observed["sale_amount"].sum())
    if result.mode == "full":
        console.print(f"recover: full recovery ({result.reason})", highlight=False)
    with step_run(ctx, "recover"):
        registry.log_frame_input(
            observed, source=str(paths.root), name="history", context="recover"
        )
        mlflow.log_params({"method": method, "mode": result.mode})
        mlflow.set_tags({"recover/mode": result.mode, "recover/reason": result.reason})
        mlflow.log_metrics(
            {
                "recover/seconds": result.total_seconds,
                **{f"recover/seconds_{phase}": v for phase, v in result.seconds.items()},
                "recover/days": result.days,
                "recover/new_days": result.new_days,
                "recover/incremental": float(result.mode == "incremental"),
                "recover/imputed_hours": float(recovered["imputed_hours"].sum()),
                "recover/lost_sales": lost,
            }
        )
        # The recovered frame is in (series_id, dt) order: its first rows, with their sales.
        sample = recovered.head(500).drop("hours_demand")
        sample = sample.join(observed, on=["series_id", "dt"], how="left", maintain_order="left")
        mlflow.log_table(sample.to_pandas(), "recovered_sample.json")
    return {
        "path": str(ctx.settings.layout.recovered(paths.tag)),
        "rows": recovered.height,
        "recover_seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "lost_sales": lost,
        "mode": result.mode,
        "reason": result.reason,
        "days": result.days,
        "new_days": result.new_days,
    }
