"""The data-quality gate: a new day is compared with its trailing weeks before it is used.

Validation (:mod:`pipelines.data.validate`) checks that a file keeps the contract; this
checks that a day is *plausible*: a day whose sales are ten times the usual, or a feed
outage that delivers zeros without stockout flags, keeps the contract and would go
straight into recovery, the lag features and the planners' forecasts.

Each check is one figure of day D against the same figure over the trailing window
(D−28 .. D−1 by default):

* ``chain_level``: the chain's sales on D over the median daily total of the window;
* ``series_level``: the median, over series, of D's sales over the series' window mean;
* ``zero_hours``: the share of in-stock business hours with no sale, D minus the window's;
* ``stockout_share``: the share of business hours out of stock, D minus the window's;
* ``missing_series``: the share of the window's series with no row on D;
* ``covariates``: the share of D's rows with a covariate that is not finite, a flag not
  0/1, a discount, rain or humidity outside its physical range, or a temperature or wind
  level beyond the window's range widened by its width.

The bounds are :class:`QualityBounds` (settings: ``FRESHCAST_QUALITY_<NAME>``); they were
set from every day of the real train split and the simulator (docs/data.md), with room to
spare.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from pipelines.data.contract import (
    BUSINESS_HOURS,
    COVARIATE_COLUMNS,
    FLAG_COLUMNS,
    HOURS,
)

TRAILING_DAYS = 28
# Fewer trailing days than this and the day is not judged: there is nothing to judge it by.
MIN_TRAILING_DAYS = 7
_BUSINESS = slice(BUSINESS_HOURS.start, BUSINESS_HOURS.stop)
# Physically possible values. The real split has discount 0.0 on 16,039 rows and up to 1.088.
ABSOLUTE_RANGES: dict[str, tuple[float, float]] = {
    "discount": (0.0, 1.5),
    "precpt": (0.0, 300.0),
    "avg_humidity": (0.0, 100.0),
}


@dataclass(frozen=True)
class QualityBounds:
    """The plausible range of each check's figure (see the module docstring)."""

    # On the real split's 83 judged days chain_level ran 0.89..1.53, series_level 0.85..1.32,
    # zero_hours -0.088..+0.048, stockout_share -0.072..+0.139, missing_series 0 and
    # covariates at most 0.0008 (docs/data.md); the bounds leave room on both sides.
    chain_level_min: float = 0.5
    chain_level_max: float = 2.0
    series_level_min: float = 0.5
    series_level_max: float = 2.0
    zero_hours: float = 0.25
    stockout_share: float = 0.30
    missing_series: float = 0.10
    covariates: float = 0.02


@dataclass(frozen=True)
class QualityCheck:
    """One check of one day: its figure, the bound it was held to, and whether it passed."""

    day: date
    check: str
    value: float
    bound: str
    ok: bool

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return f"{self.day} {self.check}: {self.value:.4g} (bound {self.bound}) {verdict}"


def _business_figures(frame: pl.DataFrame) -> pl.DataFrame:
    """Per row, over business hours: hours in stock, of those with no sale, hours out of stock."""
    hours = HOURS
    sale = frame["hours_sale"].list.to_array(hours).to_numpy()[:, _BUSINESS]
    out = frame["hours_stock_status"].list.to_array(hours).to_numpy()[:, _BUSINESS]
    in_stock = out == 0
    return frame.drop("hours_sale", "hours_stock_status").with_columns(
        pl.Series("_in_stock", in_stock.sum(axis=1)),
        pl.Series("_zero_in_stock", (in_stock & (sale == 0)).sum(axis=1)),
        pl.Series("_out", (~in_stock).sum(axis=1)),
    )


def day_figures(days: pl.LazyFrame, day: date, *, trailing: int = TRAILING_DAYS) -> dict[str, Any]:
    """The figures of every check for ``day`` against its trailing window.

    Reads ``series_id``, ``dt``, ``sale_amount``, ``hours_sale``, ``hours_stock_status`` and
    the covariates of the days ``day - trailing .. day``. Returns ``trailing_days`` (how
    many window days have rows) and one figure per check; with no window the checks
    are absent. A day with no rows at all misses every series.
    """
    start = day - timedelta(days=trailing)
    rows = (
        days.filter((pl.col("dt") >= start) & (pl.col("dt") <= day))
        .select(
            "series_id", "dt", "sale_amount", "hours_sale", "hours_stock_status", *COVARIATE_COLUMNS
        )
        .collect()
        .pipe(_business_figures)
    )
    today = rows.filter(pl.col("dt") == day)
    window = rows.filter(pl.col("dt") < day)
    n_window_days = window["dt"].n_unique()
    out: dict[str, Any] = {"trailing_days": n_window_days, "rows": today.height}
    if n_window_days == 0:
        return out
    if today.height == 0:  # the whole day is missing: every series, and all of its sales
        return out | {
            "chain_level": 0.0,
            "series_level": 0.0,
            "zero_hours": 0.0,
            "stockout_share": 0.0,
            "missing_series": 1.0,
            "covariates": 0.0,
        }
    totals = window.group_by("dt").agg(pl.col("sale_amount").sum())
    usual = float(totals.select(pl.col("sale_amount").median().fill_null(0.0)).item())
    out["chain_level"] = float(today["sale_amount"].sum()) / usual if usual > 0 else float("nan")
    means = window.group_by("series_id").agg(pl.col("sale_amount").mean().alias("_mean"))
    ratio = today.join(means, on="series_id").select(
        ((pl.col("sale_amount") + 0.1) / (pl.col("_mean") + 0.1)).median()
    )
    out["series_level"] = float(ratio.item() or float("nan"))

    def share(frame: pl.DataFrame, part: str, whole: str) -> float:
        total = float(frame[whole].sum())
        return float(frame[part].sum()) / total if total > 0 else 0.0

    for name, frame in (("today", today), ("window", window)):
        business_hours = frame.with_columns(pl.lit(len(BUSINESS_HOURS)).alias("_all"))
        out[f"zero_hours_{name}"] = share(frame, "_zero_in_stock", "_in_stock")
        out[f"stockout_share_{name}"] = share(business_hours, "_out", "_all")
    out["zero_hours"] = out["zero_hours_today"] - out["zero_hours_window"]
    out["stockout_share"] = out["stockout_share_today"] - out["stockout_share_window"]
    seen = window.select("series_id").unique()
    missing = seen.join(today.select("series_id"), on="series_id", how="anti").height
    out["missing_series"] = missing / seen.height if seen.height else 0.0
    # Flags are 0/1 whatever the window saw (a first holiday is no anomaly). Discount,
    # rain and humidity have physical ranges (rain is heavy-tailed: a storm beats any
    # window). Temperature and wind must lie within the window's range widened by its width.
    value = {c: pl.col(c).cast(pl.Float64) for c in COVARIATE_COLUMNS}
    outside = ~pl.all_horizontal(value[c].is_finite() for c in COVARIATE_COLUMNS)
    outside = outside | ~pl.all_horizontal(pl.col(c).is_in([0, 1]) for c in FLAG_COLUMNS)
    for column, (lo, hi) in ABSOLUTE_RANGES.items():
        outside = outside | (value[column] < lo) | (value[column] > hi)
    for column in ("avg_temperature", "avg_wind_level"):
        w_lo, w_hi = window[column].min(), window[column].max()
        if isinstance(w_lo, int | float) and isinstance(w_hi, int | float):
            width = max(w_hi - w_lo, 1.0)
            outside = outside | (value[column] < w_lo - width) | (value[column] > w_hi + width)
    out["covariates"] = float(today.select(outside.fill_null(True).mean()).item())
    return out


def check_day(figures: dict[str, Any], day: date, bounds: QualityBounds) -> list[QualityCheck]:
    """Hold each figure of :func:`day_figures` to its bound. No window, no checks."""
    if figures.get("trailing_days", 0) < MIN_TRAILING_DAYS or "chain_level" not in figures:
        return []
    checks = []
    for name in ("chain_level", "series_level"):
        lo, hi = getattr(bounds, f"{name}_min"), getattr(bounds, f"{name}_max")
        value = figures[name]
        checks.append(QualityCheck(day, name, value, f"{lo}..{hi}", bool(lo <= value <= hi)))
    for name in ("zero_hours", "stockout_share"):
        limit = getattr(bounds, name)
        value = figures[name]
        checks.append(QualityCheck(day, name, value, f"±{limit}", bool(abs(value) <= limit)))
    for name in ("missing_series", "covariates"):
        limit = getattr(bounds, name)
        checks.append(QualityCheck(day, name, figures[name], f"≤ {limit}", figures[name] <= limit))
    return checks
