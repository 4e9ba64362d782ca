"""A small project home for the app tests: simulated data, the daily job's outputs, a model.

Uses the lead's :func:`pipelines.jobs.daily_job` when it exists. Before it lands, the
job's outputs are built in the contract's shapes from the simulated truth, so the pages
can be tested on the same files the job will write.
"""

from __future__ import annotations

import os
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.settings import Settings, load_settings
from pipelines.simulate import SimulationConfig, write_simulation

CONFIG = SimulationConfig(series=40, days=42, eval_days=7, seed=3)


def build_home(home: Path, *, use_job: bool | None = None) -> Settings:
    """Fill ``home`` with data, job outputs, history and a registered champion."""
    from pipelines import jobs

    os.environ["FRESHCAST_HOME"] = str(home)
    write_simulation(CONFIG, home / "data" / "raw")
    settings = load_settings(profile="smoke")
    if use_job is None:
        use_job = hasattr(jobs, "daily_job")
    if use_job:
        jobs.daily_job(settings)
        # A second version, so the Models page can compare, promote and roll back.
        _register_models(settings, CONFIG.start + timedelta(days=CONFIG.days - 1), count=1)
    else:
        _fake_job(settings)
    return settings


def _fake_job(settings: Settings) -> None:
    from pipelines import aggregates, history, io

    business = CONFIG.start + timedelta(days=CONFIG.days - 1)
    d = business.isoformat()
    root = settings.data_dir
    train = io.scan_split(root, "train")
    truth = io.scan_truth(root)
    assert truth is not None
    # Recovered: observed in-stock hours kept, stockout hours take the true demand.
    recovered = (
        train.join(truth.select("series_id", "dt", "hours_demand"), on=["series_id", "dt"])
        .with_columns(
            pl.struct("hours_sale", "hours_stock_status", "hours_demand")
            .map_elements(
                lambda r: [
                    dmd if st else max(s, 0.0)
                    for s, st, dmd in zip(
                        r["hours_sale"], r["hours_stock_status"], r["hours_demand"], strict=True
                    )
                ],
                return_dtype=pl.List(pl.Float64),
            )
            .alias("hours_demand"),
            pl.col("stock_hour6_22_cnt").cast(pl.Int32).alias("imputed_hours"),
        )
        .with_columns(pl.col("hours_demand").list.sum().alias("demand_amount"))
        .select(
            "series_id",
            "store_id",
            "product_id",
            "dt",
            "hours_demand",
            "demand_amount",
            "imputed_hours",
        )
        .collect()
    )
    io.write_parquet(recovered, settings.work_dir / "recovered" / f"{d}.parquet")
    rng = np.random.default_rng(0)
    future = truth.filter(pl.col("dt") > business).sort("series_id", "dt").collect()
    noise = rng.normal(1.0, 0.1, future.height)
    forecasts = future.select(
        "store_id", "product_id", "dt", (pl.col("demand_amount") * noise).alias("yhat")
    ).with_columns(
        (pl.col("yhat") * 0.7).alias("yhat_p10"),
        pl.col("yhat").alias("yhat_p50"),
        (pl.col("yhat") * 1.3).alias("yhat_p90"),
    )
    io.write_parquet(forecasts, settings.work_dir / "forecasts" / f"{d}.parquet")
    daily = pl.concat([train, io.scan_split(root, "eval")])
    frames = aggregates.build_aggregates(
        daily, recovered.lazy(), forecasts.lazy(), business_date=business
    )
    aggregates.write_aggregates(settings.work_dir, d, frames)

    db = settings.history_db
    for step, status, error in (
        ("ingest", "done", None),
        ("recover", "done", None),
        ("forecast", "failed", "simulated failure: champion missing"),
        ("forecast", "done", None),
        ("aggregates", "done", None),
    ):
        row = history.start_step(db, job="daily", business_date=d, step=step)
        history.end_step(db, row, status=status, error=error)
    _register_models(settings, business)


def _register_models(settings: Settings, business: date, *, count: int = 2) -> None:
    """Register ``count`` tiny stand-in versions (champion unless one exists; last = challenger)."""
    import mlflow
    import pandas as pd

    from models import registry

    class _Mean(mlflow.pyfunc.PythonModel):
        def predict(
            self, context: object, model_input: pd.DataFrame, params: object = None
        ) -> pd.DataFrame:
            return model_input[["x"]] * 0.0

    registry.configure(settings.tracking_uri)
    # An explicit experiment id, not mlflow.set_experiment: that global would leak into the
    # next test's project (another tracking URI) within the same process.
    experiment = registry.ensure_experiment("app-test-stand-ins", settings.mlruns_dir)
    example = pd.DataFrame({"x": [1.0, 2.0]})
    for i, (acc, wpe) in enumerate(((0.61, -0.04), (0.64, 0.02))[-count:]):
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_params({"train_rows": 1680 + i, "model": "lgbm"})
            mlflow.log_metrics({"eval/acc": acc, "eval/wpe": wpe, "eval/wape": 1 - acc})
            with warnings.catch_warnings():  # MLflow's nudge towards type-hinted models
                warnings.simplefilter("ignore", UserWarning)
                version = registry.log_pyfunc(
                    _Mean(),
                    artifacts={},
                    input_example=example,
                    output_example=example * 0.0,
                    tags={"business_date": business.isoformat(), "kind": "stand-in"},
                )
        if registry.alias_version(registry.CHAMPION) is None:
            registry.set_alias(registry.CHAMPION, version.version)
    registry.set_alias(registry.CHALLENGER, version.version)
