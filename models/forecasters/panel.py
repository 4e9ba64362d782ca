"""The panel's days and cuts, shared by every forecaster and its callers.

A *panel* is the frame every forecaster reads (see :mod:`models.forecasters.base`): one row
per series-day, history rows (``is_future`` false) before the forecast days.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from models.constants import HORIZON


def first_day(frame: pl.DataFrame, column: str = "dt") -> date:
    """The earliest day of ``column``; a frame without one is an error."""
    value = frame[column].min()
    if not isinstance(value, date):
        raise ValueError(f"the frame has no {column!r} day")
    return value


def last_day(frame: pl.DataFrame, column: str = "dt") -> date:
    """The latest day of ``column``; a frame without one is an error."""
    value = frame[column].max()
    if not isinstance(value, date):
        raise ValueError(f"the frame has no {column!r} day")
    return value


def last_history_day(panel: pl.DataFrame) -> date:
    """The forecast origin: the last day with ``is_future`` false."""
    value = panel.filter(~pl.col("is_future"))["dt"].max()
    if not isinstance(value, date):
        raise ValueError("the panel has no history rows")
    return value


def check_windows(windows: pl.DataFrame, through: date) -> None:
    """The leakage guard of every update: no window may end after ``through``."""
    if windows.height and last_day(windows) > through:
        raise ValueError(f"a refresh window ends after {through}: that would train on the future")


def with_origin(panel: pl.DataFrame, origin: date, *, horizon: int = HORIZON) -> pl.DataFrame:
    """Re-cut a panel so that days after ``origin`` are forecast days.

    Rows after ``origin + horizon`` are dropped; ``y`` and ``stock_hour6_22_cnt`` are nulled
    on the new forecast days so no model can read them (the leakage guard for calibration).
    """
    end = origin + timedelta(days=horizon)
    fut = pl.col("dt") > origin
    realised = [c for c in ("y", "stock_hour6_22_cnt", "sale_amount") if c in panel.columns]
    return panel.filter(pl.col("dt") <= end).with_columns(
        fut.alias("is_future"),
        *(pl.when(fut).then(None).otherwise(pl.col(c)).alias(c) for c in realised),
    )


def calibration_actuals(
    panel: pl.DataFrame, origin: date, *, horizon: int = HORIZON
) -> pl.DataFrame:
    """The realised ``y`` and cleanliness of the calibration days after ``origin``."""
    end = origin + timedelta(days=horizon)
    return panel.filter(
        (pl.col("dt") > origin) & (pl.col("dt") <= end) & ~pl.col("is_future")
    ).select(
        "series_id",
        "dt",
        pl.col("y").alias("actual"),
        (pl.col("stock_hour6_22_cnt") == 0).alias("clean"),
    )
