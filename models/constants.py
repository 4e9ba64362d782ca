"""The constants the learners share with each other and with the data layer.

The one owner of the forecast horizon, the served quantiles and the forecast columns, and of
the column names of the data contract. ``models`` must not import ``pipelines``, so the names
live here and :mod:`pipelines.data.contract` re-exports them as part of the data contract.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

# Days forecast from each origin: the published eval split is 7 days.
HORIZON = 7
# The quantiles every forecaster serves, and the columns of a forecast (point first).
QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
PRED_COLUMNS: tuple[str, ...] = ("yhat", "yhat_p10", "yhat_p50", "yhat_p90")
# What a forecaster learns: stage 1's recovered demand, or the censored sales themselves.
Target = Literal["recovered", "censored"]

# Location and product hierarchy: city > store; group > categories > product.
HIERARCHY_COLUMNS: tuple[str, ...] = (
    "city_id",
    "store_id",
    "management_group_id",
    "first_category_id",
    "second_category_id",
    "third_category_id",
    "product_id",
)
FLAG_COLUMNS: tuple[str, ...] = ("holiday_flag", "activity_flag")
WEATHER_COLUMNS: tuple[str, ...] = ("precpt", "avg_temperature", "avg_humidity", "avg_wind_level")
# Known-future covariates: published for the forecast days in eval.parquet.
COVARIATE_COLUMNS: tuple[str, ...] = ("discount", *FLAG_COLUMNS, *WEATHER_COLUMNS)


def as_target(name: str) -> Target:
    """``name`` as a :data:`Target`; any other name is an error."""
    if name == "recovered":
        return "recovered"
    if name == "censored":
        return "censored"
    raise ValueError(f"unknown target {name!r}: choose recovered or censored")


def series_day_increasing(frame: pl.DataFrame) -> bool:
    """True when (series_id, dt) strictly increases row by row: sorted, no repeated key.

    A pass over two columns, far cheaper than sorting a wide frame that is already in order.
    """
    if frame.height < 2:
        return True
    step_ok = (pl.col("series_id").diff() > 0) | (
        (pl.col("series_id").diff() == 0) & (pl.col("dt").diff().dt.total_days() > 0)
    )
    return bool(frame.select(step_ok.slice(1).all()).item())
