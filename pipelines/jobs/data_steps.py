"""The daily job's data steps for a business date D: ingest (validate) and recover.

History is every row with ``dt ≤ D``; no step reads a target after D.
"""

from __future__ import annotations

import json
import time
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
    }


def recover_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    from pipelines.recovery.recover import recover_demand

    method = ctx.settings.recovery_method
    history = history_through(paths)
    started = time.perf_counter()
    recovered = recover_demand(history, method=method)
    seconds = time.perf_counter() - started
    out = io.write_parquet(recovered, ctx.settings.layout.recovered(paths.tag))
    observed = history.select("series_id", "dt", "sale_amount").collect()
    joined = recovered.join(observed, on=["series_id", "dt"])
    lost = float((joined["demand_amount"] - joined["sale_amount"]).sum())
    with step_run(ctx, "recover"):
        registry.log_frame_input(
            observed, source=str(paths.root), name="history", context="recover"
        )
        mlflow.log_params({"method": method})
        mlflow.log_metrics(
            {
                "recover/seconds": seconds,
                "recover/imputed_hours": float(recovered["imputed_hours"].sum()),
                "recover/lost_sales": lost,
            }
        )
        sample = joined.sort("series_id", "dt").head(500).drop("hours_demand")
        mlflow.log_table(sample.to_pandas(), "recovered_sample.json")
    return {"path": str(out), "rows": recovered.height, "seconds": seconds, "lost_sales": lost}
