"""The LightGBM forecaster's training and forecast rows: one row per (target day, horizon).

For a target day t and horizon h, the origin-role features are read at day t-h+1 (they
describe the series up to day t-h, the forecast origin), the target-day features at day t
itself, and ``horizon`` is a feature. :func:`stack_horizons` builds them for a full fit,
:func:`forecast_rows` for the forecast days, and :func:`rows_for_keys` for the sampled rows of
a continual refresh's windows.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

import numpy as np
import polars as pl

from models.constants import HORIZON

# The key of a stacked row.
KEY = ("series_id", "dt", "horizon")


class FeatureRoles(Protocol):
    """The panel columns a LightGBM forecaster reads, by role (``LGBMConfig`` has them)."""

    @property
    def origin_features(self) -> tuple[str, ...]: ...

    @property
    def target_day_features(self) -> tuple[str, ...]: ...

    @property
    def categorical(self) -> tuple[str, ...]: ...


def stack_horizons(
    panel: pl.DataFrame,
    *,
    origin_features: tuple[str, ...],
    keep: tuple[str, ...],
    horizons: range,
    target_rows: pl.Expr,
    fraction: float = 1.0,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per (target day, horizon): origin features read ``h - 1`` rows earlier.

    Reads ``series_id``, ``dt`` (panel sorted by series and day); returns the rows selected
    by ``target_rows`` for every horizon (a hashed ``fraction`` of them), with ``horizon``
    added. The offset is the leakage guard: at horizon h the origin features come from day
    t-h+1, which only saw targets up to day t-h. The source row must be the same series
    exactly h-1 days earlier, else the origin features are null (a gap in a series' days
    gives nulls, never a wrong day). Gathering only the kept rows by index is ~3x faster
    than shifting every column of the panel once per horizon.
    """
    series = panel["series_id"].to_numpy()
    day = panel["dt"].cast(pl.Int32).to_numpy()
    # with_columns, not select: a literal such as pl.lit(True) must broadcast to every row.
    wanted = panel.with_columns(target_rows.fill_null(False).alias("_rows"))["_rows"].to_numpy()
    kept, origin = panel.select(keep), panel.select(origin_features)
    parts = []
    for h in horizons:
        lag = h - 1
        rows = wanted
        if fraction < 1:
            bucket = panel.select(pl.struct("series_id", "dt").hash(seed=seed + h) % 1_000_000)
            rows = rows & (bucket.to_series().to_numpy() < int(fraction * 1_000_000))
        target = np.flatnonzero(rows)
        source = np.maximum(target - lag, 0)
        same = (
            (target >= lag)
            & (series[source] == series[target])
            & (day[target] - day[source] == lag)
        )
        index = pl.Series(source.astype(np.uint32))
        if not same.all():
            index = index.scatter(np.flatnonzero(~same), None)
        parts.append(
            pl.concat(
                [kept[target], origin.select(pl.all().gather(index))], how="horizontal"
            ).with_columns(pl.lit(h, dtype=pl.Int32).alias("horizon"))
        )
    return pl.concat(parts, how="vertical")


def forecast_rows(
    panel: pl.DataFrame,
    origin: date,
    origin_features: tuple[str, ...],
    day_features: tuple[str, ...],
) -> pl.DataFrame:
    """One row per forecast day (horizons 1..7 after ``origin``), as the model reads it.

    The rows :func:`stack_horizons` would give for the forecast days: at horizon h, day
    ``origin + h`` reads its origin features at day ``t - h + 1 = origin + 1`` for every h,
    so one join on that day replaces seven shifted copies of the panel. A series without
    an ``origin + 1`` row gets nulls, as the shifted copies would.
    """
    days = (pl.col("dt") - pl.lit(origin)).dt.total_days()
    future = panel.filter((days >= 1) & (days <= HORIZON))
    first = future.filter(days == 1).select("series_id", *origin_features)
    return (
        future.select("series_id", "dt", *day_features)
        .join(first, on="series_id", how="left")
        .with_columns(days.cast(pl.Int32).alias("horizon"))
    )


def row_keys(windows: pl.DataFrame, *, fraction: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """The stacked rows (``series_id``, ``dt``, ``horizon``) of the windows, a hashed share kept.

    A row is kept when a seeded hash of its key falls below ``fraction`` (the full fit
    subsamples its rows the same way). The draw is a function of the key alone, so a window
    replayed again brings back the same rows, whose raw scores can then be cached; and the
    keys are sampled before any feature is read, so only kept rows are joined. Sorted by key,
    because LightGBM's bagging depends on row order.
    """
    horizons = pl.DataFrame({"horizon": pl.int_range(1, HORIZON + 1, dtype=pl.Int32, eager=True)})
    keys = windows.select("series_id", "dt").join(horizons, how="cross")
    if fraction < 1:
        bucket = pl.struct(*KEY).hash(seed=seed) % 1_000_000
        keys = keys.filter(bucket < int(fraction * 1_000_000))
    return keys.sort(*KEY)


def rows_for_keys(
    roles: FeatureRoles, panel: pl.DataFrame | pl.LazyFrame, keys: pl.DataFrame
) -> pl.DataFrame:
    """The stacked training rows at ``keys``, sorted by key.

    Target-day columns and ``y`` come from the row at ``dt``, origin features from the row at
    ``dt - horizon + 1`` (as in ``stack_horizons``), so a row only sees targets up to its
    origin ``dt - horizon``. Rows whose target is null or a forecast day are dropped. Two
    joins on the sampled keys, instead of shifting the whole panel per horizon.
    """
    keep = ("series_id", "dt", "y", *roles.target_day_features, *roles.categorical)
    src = panel.lazy()
    origins = src.select("series_id", pl.col("dt").alias("_odt"), *roles.origin_features)
    return (
        keys.lazy()
        .join(src.select(*keep, "is_future"), on=["series_id", "dt"], how="inner")
        .filter(pl.col("y").is_not_null() & ~pl.col("is_future"))
        .with_columns((pl.col("dt") - pl.duration(days=pl.col("horizon") - 1)).alias("_odt"))
        .join(origins, on=["series_id", "_odt"], how="left")
        .select(*keep, *roles.origin_features, "horizon")
        .sort(*KEY)
        .collect()
    )


def window_rows(
    roles: FeatureRoles, panel: pl.DataFrame | pl.LazyFrame, windows: pl.DataFrame
) -> pl.DataFrame:
    """Every stacked training row of the windows: one per (series, target day, horizon).

    Reads the feature columns of ``roles`` from ``panel``; returns them with ``y`` and
    ``horizon``.
    """
    if windows.height == 0:
        raise ValueError("no windows to train on")
    return rows_for_keys(roles, panel, row_keys(windows))
