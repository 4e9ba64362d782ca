"""Forecasting with a fitted model: the days after history, for the job, the CLI and the pyfunc.

* :func:`forecast_days` is the in-memory core: history plus the known-future covariates of
  the next days in, the forecast frame out.
* :func:`run_forecast` is ``freshcast forecast``: the eval days of a folder, a saved model.
* :func:`forecast_requests` builds the request rows for D+1..D+7; :func:`forecast_with_history`
  answers them from a bundled history (the pyfunc's path).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from models.forecasters import Forecaster
from models.forecasters.panel import first_day, last_day
from pipelines.data.contract import COVARIATE_COLUMNS, FORECAST_SCHEMA, series_id_expr
from pipelines.data.io import scan_split, split_path, write_parquet
from pipelines.errors import DataError
from pipelines.features.config import feature_config_of
from pipelines.features.panel import Recovery, make_panel, split_stage1
from pipelines.training.fit import load_model

REQUEST_SCHEMA: dict[str, Any] = {
    "store_id": "int64",
    "product_id": "int64",
    "dt": "datetime64[ns]",
    "discount": "float64",
    "holiday_flag": "int32",
    "activity_flag": "int32",
    "precpt": "float64",
    "avg_temperature": "float64",
    "avg_humidity": "float64",
    "avg_wind_level": "float64",
}


def forecast_days(
    model: Forecaster,
    history: pl.LazyFrame,
    future: pl.LazyFrame,
    *,
    recovery: Recovery | None = None,
) -> pl.DataFrame:
    """Forecast the days in ``future`` (at most 7, right after history) with ``model``.

    Args:
        model: a fitted forecaster from :func:`run_train` or :func:`fit_model`.
        history: daily rows up to the origin (hub columns, ``series_id``, ``dt`` as Date).
        future: the forecast days' rows; only their keys and known-future covariates
            (discount, holiday, activity, weather) and hierarchy ids are read.

    Returns:
        The DESIGN.md section 4 forecast frame: store_id, product_id, dt, yhat, yhat_p10,
        yhat_p50, yhat_p90, one row per future row of a series with history.
    """
    fcfg = feature_config_of(model.metadata_)
    # Read each input once (several lazy queries would each rescan a parquet source). The
    # hourly lists are only stage 1's input: kept when stage 1 has to run here.
    hourly = ("hours_sale", "hours_stock_status")
    hist = (history if recovery is None else history.drop(hourly, strict=False)).collect()
    fut = future.drop(hourly, strict=False).collect()
    if hist.is_empty() or fut.is_empty():
        raise DataError("nothing to forecast: history or forecast days are empty")
    last, first_future = last_day(hist), first_day(fut)
    if (first_future - last).days != 1:
        raise DataError(
            f"forecast days must start the day after history ({last}); they start {first_future}"
        )
    keys = fut.select("series_id", "store_id", "product_id").unique()
    fut = fut.join(hist.select("series_id").unique(), on="series_id", how="semi")
    panel, _ = make_panel(
        hist.lazy(),
        fut.lazy(),
        target=model.target_,
        feature_config=fcfg,
        recovery=recovery,
        features_from=first_future,
    )
    pred = model.predict(panel)
    return (
        pred.join(keys, on="series_id", how="left")
        .select(list(FORECAST_SCHEMA))
        .cast(pl.Schema(FORECAST_SCHEMA))
        .sort("store_id", "product_id", "dt")
    )


def run_forecast(
    data_dir: Path, model_path: Path, out: Path, *, recovery: Recovery | None = None
) -> Path:
    """Forecast every series in ``data_dir``'s eval split with the saved model.

    Reads train.parquet as history and eval.parquet for the forecast days' covariates
    (their sales and stockouts are never read). Writes the forecast file to ``out``.
    """
    if split_path(data_dir, "eval") is None:
        raise DataError(
            "forecast needs eval.parquet (the forecast days' covariates)", file=data_dir
        )
    model = load_model(model_path)
    frame = forecast_days(
        model, scan_split(data_dir, "train"), scan_split(data_dir, "eval"), recovery=recovery
    )
    return write_parquet(frame, out)


def forecast_with_history(
    model: Forecaster, history: pl.DataFrame, requests: pl.DataFrame
) -> pl.DataFrame:
    """Forecast request rows from the bundled history; unknown series are an error."""
    series = requests.select(series_id_expr(), pl.all())
    static = history.group_by("series_id").agg(
        pl.col(c).last()
        for c in history.columns
        if c.endswith("_id") and c not in ("series_id", "store_id", "product_id")
    )
    unknown = series.join(static, on="series_id", how="anti")
    if unknown.height:
        first = unknown.row(0, named=True)
        raise ValueError(
            f"{unknown.height} request rows are for series the model has no history for, "
            f"e.g. store_id={first['store_id']}, product_id={first['product_id']}"
        )
    future = series.join(static, on="series_id")
    # Every feature is computed within a series, so the requested series' history is all a
    # forecast needs: a request for a few series no longer builds features for all 50,000.
    history = history.join(series.select("series_id").unique(), on="series_id", how="semi")
    hist, recovery = split_stage1(history)
    return forecast_days(model, hist, future.lazy(), recovery=recovery)


def forecast_requests(
    history: pl.LazyFrame, future: pl.LazyFrame, *, day: Any, horizon: int
) -> pl.DataFrame:
    """Request rows for D+1..D+horizon for every series in history.

    Covariates come from the data where it has those days (they are published ahead);
    for days it lacks, the series' last known values are carried forward, and calendar
    flags stay as last seen. Sales of future rows are never read.
    """
    keys = history.select("series_id", "store_id", "product_id").unique()
    days = pl.DataFrame(
        {"dt": pl.date_range(day + timedelta(days=1), day + timedelta(days=horizon), eager=True)}
    )
    grid = keys.collect().join(days, how="cross")
    known = future.select("series_id", "dt", *COVARIATE_COLUMNS).collect()
    last = (
        history.sort("dt")
        .group_by("series_id")
        .agg(pl.col(c).last() for c in COVARIATE_COLUMNS)
        .collect()
    )
    filled = grid.join(known, on=["series_id", "dt"], how="left")
    filled = filled.join(last, on="series_id", how="left", suffix="_last").with_columns(
        pl.coalesce(c, f"{c}_last").alias(c) for c in COVARIATE_COLUMNS
    )
    return filled.select(list(REQUEST_SCHEMA)).sort("store_id", "product_id", "dt")
