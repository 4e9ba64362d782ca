"""The daily job's recover step: full on the first day, incremental on the next, and what
it logs on its MLflow run (real MLflow on a temporary SQLite store)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import mlflow
import polars as pl

from pipelines.data import io
from pipelines.jobs.data_steps import DayInputs, history_through, recover_step, recovered_history
from pipelines.jobs.runner import StepContext
from pipelines.serving import registry
from pipelines.settings import load_settings


def test_the_recover_step_is_incremental_after_its_first_day(sim_dir: Path, tmp_path: Path):
    settings = load_settings(home=tmp_path, data_dir=sim_dir, profile="smoke")
    last = io.scan_days(sim_dir).select(pl.col("dt").max()).collect().item()
    first, second = last - timedelta(days=3), last - timedelta(days=2)
    records = {}
    for day in (first, second):
        ctx = StepContext(settings=settings, job="daily", business_date=day.isoformat())
        records[day] = recover_step(ctx, DayInputs(sim_dir, day))
    assert records[first]["mode"] == "full"
    assert records[first]["reason"] == "no earlier recovery"
    assert records[second]["mode"] == "incremental"
    assert (records[second]["new_days"], records[second]["days"]) == (1, 2)
    # Every step after it still sees the whole history ≤ D, recovered.
    paths = DayInputs(sim_dir, second)
    ctx = StepContext(settings=settings, job="daily", business_date=second.isoformat())
    history = recovered_history(ctx, paths)
    expected = history_through(paths).collect()
    assert history.height == expected.height == records[second]["rows"]
    assert history.columns == [*expected.columns, "demand_amount", "imputed_hours"]
    assert history["demand_amount"].null_count() == 0
    assert (history["demand_amount"] >= history["sale_amount"] - 1e-9).all()

    registry.configure(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["daily"], output_format="list")
    by_day = {r.data.tags["business_date"]: r for r in runs if r.info.run_name == "recover"}
    full, incremental = by_day[first.isoformat()], by_day[second.isoformat()]
    assert full.data.params["mode"] == full.data.tags["recover/mode"] == "full"
    assert full.data.metrics["recover/days"] == expected["dt"].n_unique() - 1
    assert full.data.metrics["recover/incremental"] == 0.0
    assert incremental.data.params["mode"] == "incremental"
    assert incremental.data.metrics["recover/days"] == 2
    assert incremental.data.metrics["recover/new_days"] == 1
    assert incremental.data.metrics["recover/incremental"] == 1.0
    assert incremental.data.tags["recover/reason"].startswith(f"new days after {first}")
