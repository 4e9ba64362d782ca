"""The data contract: FreshRetailNet-50K's raw schema and freshcast's internal views.

This module is the one place that says what the columns are. Validation of files
against it lives in :mod:`pipelines.data.validate`; reading and writing in :mod:`pipelines.data.io`.
"""

from __future__ import annotations

import polars as pl

from models.constants import COVARIATE_COLUMNS, FLAG_COLUMNS, HIERARCHY_COLUMNS, WEATHER_COLUMNS

__all__ = ["COVARIATE_COLUMNS", "FLAG_COLUMNS", "HIERARCHY_COLUMNS", "WEATHER_COLUMNS"]

HOURS = 24
# The published stockout count covers business hours 6..21 (Python slice 6:22).
BUSINESS_HOURS = range(6, 22)

KEY_COLUMNS: tuple[str, ...] = ("store_id", "product_id", "dt")
RAW_SCHEMA: dict[str, pl.DataType] = {
    "city_id": pl.Int64(),
    "store_id": pl.Int64(),
    "management_group_id": pl.Int64(),
    "first_category_id": pl.Int64(),
    "second_category_id": pl.Int64(),
    "third_category_id": pl.Int64(),
    "product_id": pl.Int64(),
    "dt": pl.String(),
    "sale_amount": pl.Float64(),
    "hours_sale": pl.List(pl.Float64()),
    "stock_hour6_22_cnt": pl.Int32(),
    "hours_stock_status": pl.List(pl.Int32()),
    "discount": pl.Float64(),
    "holiday_flag": pl.Int32(),
    "activity_flag": pl.Int32(),
    "precpt": pl.Float64(),
    "avg_temperature": pl.Float64(),
    "avg_humidity": pl.Float64(),
    "avg_wind_level": pl.Float64(),
}
LIST_COLUMNS: tuple[str, ...] = ("hours_sale", "hours_stock_status")

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "store_id": pl.Int64(),
    "product_id": pl.Int64(),
    "dt": pl.String(),
    "hours_demand": pl.List(pl.Float64()),
    "demand_amount": pl.Float64(),
}

# The recovered frame written by `freshcast recover` (DESIGN.md section 4).
RECOVERED_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.Int64(),
    "store_id": pl.Int64(),
    "product_id": pl.Int64(),
    "dt": pl.Date(),
    "hours_demand": pl.List(pl.Float64()),
    "demand_amount": pl.Float64(),
    "imputed_hours": pl.Int32(),
}

FORECAST_SCHEMA: dict[str, pl.DataType] = {
    "store_id": pl.Int64(),
    "product_id": pl.Int64(),
    "dt": pl.Date(),
    "yhat": pl.Float64(),
    "yhat_p10": pl.Float64(),
    "yhat_p50": pl.Float64(),
    "yhat_p90": pl.Float64(),
}

# product_id < 10**6 in the published data (865 products, ids < 1,000), so this packs
# the pair into one sortable Int64 without collisions.
SERIES_ID_FACTOR = 1_000_000


def series_id_expr() -> pl.Expr:
    """The `series_id` key of a (store_id, product_id) pair, as an Int64 expression."""
    return (pl.col("store_id") * SERIES_ID_FACTOR + pl.col("product_id")).alias("series_id")


def add_series_id(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add `series_id` from store_id and product_id, as the first column."""
    return frame.select(series_id_expr(), pl.all())
