"""Stage-2 features: pure Polars ``LazyFrame -> LazyFrame`` steps, composed with ``.pipe()``.

The forecasting *panel* is one row per series-day: history rows (target known) followed by
the forecast days (target null, known-future covariates given). Every step here reads only
columns of the same series at earlier days for anything derived from the target or from
stockouts, so a row's features never depend on its own or later targets.

Features come in two roles (see :class:`FeatureSpec`):

* **origin** features (``target_lag1``, ``target_rolling_mean_lag1_w28``, stockout rates, ...)
  describe the series as of the day *before* the row. A direct multi-horizon model reads them
  at the first forecast day (the origin + 1) and shifts them ``horizon - 1`` days forward, so
  at horizon ``h`` they use only targets up to the origin.
* **target-day** features (calendar, known-future covariates, same-weekday lags 7..28, static
  ids) belong to the forecast day itself: they are known for every horizon up to 7.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from pipelines.schema import BUSINESS_HOURS, COVARIATE_COLUMNS, HIERARCHY_COLUMNS

Target = Literal["recovered", "censored"]
TARGET_COLUMN = "y"
MAX_HORIZON = 7
_BUSINESS_HOURS = len(BUSINESS_HOURS)

# Columns derived from the realised day; they are unknown for forecast days and must only
# ever be read shifted (the past). `build_panel` nulls them on forecast rows.
PAST_ONLY_COLUMNS: tuple[str, ...] = (
    TARGET_COLUMN,
    "sale_amount",
    "stock_hour6_22_cnt",
    "imputed_hours",
    "demand_amount",
)


@dataclass(frozen=True)
class FeatureConfig:
    """Which windows to build. Frozen; the defaults are the measured production set."""

    lags: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    seasonal_lags: tuple[int, ...] = (7, 14, 21, 28)
    windows: tuple[int, ...] = (7, 14, 28)
    stockout_windows: tuple[int, ...] = (7, 28)

    def __post_init__(self) -> None:
        if any(lag < 1 for lag in self.lags):
            raise ValueError("lags must be >= 1 (lag 0 would be the target itself)")
        # Same-weekday lags must reach back past the whole horizon to be known at horizon 7.
        if any(lag < MAX_HORIZON for lag in self.seasonal_lags):
            raise ValueError(f"seasonal lags must be >= {MAX_HORIZON}")


@dataclass(frozen=True)
class FeatureSpec:
    """The feature columns a model reads, by role. Stored inside fitted models."""

    origin: tuple[str, ...]
    target_day: tuple[str, ...]
    categorical: tuple[str, ...] = field(default=HIERARCHY_COLUMNS)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.origin, *self.target_day, *self.categorical)


def select_target(frame: pl.LazyFrame, *, target: Target) -> pl.LazyFrame:
    """Add the modelling target ``y``.

    Reads ``demand_amount`` (recovered) or ``sale_amount`` (censored); adds ``y``.
    """
    source = "demand_amount" if target == "recovered" else "sale_amount"
    return frame.with_columns(pl.col(source).cast(pl.Float64).alias(TARGET_COLUMN))


def add_lag_features(
    frame: pl.LazyFrame, *, lags: tuple[int, ...], seasonal_lags: tuple[int, ...]
) -> pl.LazyFrame:
    """Add ``target_lag{k}`` for origin lags and same-weekday lags, and their seasonal mean.

    Reads ``series_id``, ``dt``, ``y`` (sorted by series and day, contiguous days); adds
    ``target_lag{k}`` and ``target_seasonal_mean_lag7_k{n}``.
    """
    y = pl.col(TARGET_COLUMN)
    exprs = [y.shift(k).over("series_id").alias(f"target_lag{k}") for k in (*lags, *seasonal_lags)]
    seasonal = [f"target_lag{k}" for k in seasonal_lags]
    out = frame.with_columns(exprs)
    if seasonal:
        out = out.with_columns(
            pl.mean_horizontal(seasonal).alias(f"target_seasonal_mean_lag7_k{len(seasonal)}")
        )
    return out


def add_rolling_features(frame: pl.LazyFrame, *, windows: tuple[int, ...]) -> pl.LazyFrame:
    """Add rolling mean/std/max and zero share of the target over the past ``w`` days.

    Reads ``series_id``, ``y``; adds ``target_rolling_{mean,std,max,zero_share}_lag1_w{w}``
    and ``target_expanding_mean_lag1``. The ``shift(1)`` before each window is the leakage
    guard: a window at day t ends at day t-1.
    """
    past = pl.col(TARGET_COLUMN).shift(1)
    exprs: list[pl.Expr] = []
    for w in windows:
        exprs += [
            past.rolling_mean(w, min_samples=1)
            .over("series_id")
            .alias(f"target_rolling_mean_lag1_w{w}"),
            past.rolling_std(w, min_samples=2)
            .over("series_id")
            .alias(f"target_rolling_std_lag1_w{w}"),
            past.rolling_max(w, min_samples=1)
            .over("series_id")
            .alias(f"target_rolling_max_lag1_w{w}"),
            (past == 0)
            .cast(pl.Float64)
            .rolling_mean(w, min_samples=1)
            .over("series_id")
            .alias(f"target_rolling_zero_share_lag1_w{w}"),
        ]
    # Series statistic from the past only (a whole-history mean would leak the target).
    exprs.append(
        (past.cum_sum() / past.is_not_null().cast(pl.Int64).cum_sum())
        .over("series_id")
        .alias("target_expanding_mean_lag1")
    )
    return frame.with_columns(exprs)


def add_conditional_means(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add past mean targets on holiday, promotion and rainy days, and on the other days.

    Like the published SSA baseline, this lets a forecast day lean on past days of the same
    kind; the model pairs them with the forecast day's own (known) flags. Reads
    ``series_id``, ``y``, ``holiday_flag``, ``activity_flag``, ``precpt``; adds
    ``target_expanding_mean_lag1_{holiday,activity,rain}{1,0}``. Past days only (shift 1).
    """
    flags = {
        "holiday": pl.col("holiday_flag") == 1,
        "activity": pl.col("activity_flag") == 1,
        "rain": pl.col("precpt") > 3.5,  # the published SSA's rain threshold
    }
    y = pl.col(TARGET_COLUMN)
    exprs = []
    for name, flag in flags.items():
        for value, cond in ((1, flag), (0, ~flag)):
            hit = (cond & y.is_not_null()).cast(pl.Float64)
            num = (y.fill_null(0.0) * hit).shift(1).cum_sum().over("series_id")
            den = hit.shift(1).cum_sum().over("series_id")
            exprs.append(
                pl.when(den > 0).then(num / den).alias(f"target_expanding_mean_lag1_{name}{value}")
            )
    return frame.with_columns(exprs)


def add_stockout_features(frame: pl.LazyFrame, *, windows: tuple[int, ...]) -> pl.LazyFrame:
    """Add recent stockout rates and recovered-demand shares, all from past days.

    Reads ``series_id``, ``stock_hour6_22_cnt``, and when present ``imputed_hours``,
    ``demand_amount`` and ``sale_amount``; adds ``stockout_rate_lag1_w{w}``,
    ``stockout_hours_lag1``, ``imputed_share_lag1_w{w}`` and ``recovered_share_lag1_w{w}``.
    """
    names = frame.collect_schema().names()
    rate = (pl.col("stock_hour6_22_cnt").cast(pl.Float64) / _BUSINESS_HOURS).shift(1)
    exprs = [pl.col("stock_hour6_22_cnt").shift(1).over("series_id").alias("stockout_hours_lag1")]
    for w in windows:
        exprs.append(
            rate.rolling_mean(w, min_samples=1).over("series_id").alias(f"stockout_rate_lag1_w{w}")
        )
        if "imputed_hours" in names:
            share = (pl.col("imputed_hours").cast(pl.Float64) / 24).shift(1)
            exprs.append(
                share.rolling_mean(w, min_samples=1)
                .over("series_id")
                .alias(f"imputed_share_lag1_w{w}")
            )
        if "demand_amount" in names:
            gap = (pl.col("demand_amount") - pl.col("sale_amount")).shift(1)
            dem = pl.col("demand_amount").shift(1)
            exprs.append(
                (
                    gap.rolling_sum(w, min_samples=1).over("series_id")
                    / (dem.rolling_sum(w, min_samples=1).over("series_id") + 1e-9)
                ).alias(f"recovered_share_lag1_w{w}")
            )
    return frame.with_columns(exprs)


def add_calendar_features(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add calendar features of the day itself.

    Reads ``dt`` (Date); adds ``dow`` (1=Mon), ``day_of_month``, ``is_weekend``.
    """
    dow = pl.col("dt").dt.weekday()
    return frame.with_columns(
        dow.cast(pl.Int32).alias("dow"),
        pl.col("dt").dt.day().cast(pl.Int32).alias("day_of_month"),
        (dow >= 6).cast(pl.Int32).alias("is_weekend"),
    )


def add_covariate_features(frame: pl.LazyFrame, *, window: int = 28) -> pl.LazyFrame:
    """Add relative discount and promotion context from known-future covariates.

    Known-future covariates are published for forecast days, so windows over them may
    include the day itself. Reads ``series_id``, ``discount``, ``activity_flag``; adds
    ``discount_rel_w{window}`` and ``activity_rolling_mean_w{window}``.
    """
    disc = pl.col("discount")
    return frame.with_columns(
        (disc / (disc.rolling_mean(window, min_samples=1).over("series_id") + 1e-6)).alias(
            f"discount_rel_w{window}"
        ),
        pl.col("activity_flag")
        .cast(pl.Float64)
        .rolling_mean(window, min_samples=1)
        .over("series_id")
        .alias(f"activity_rolling_mean_w{window}"),
    )


def add_static_features(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Cast the hierarchy ids to Int32 codes that models treat as categoricals.

    Reads and replaces :data:`pipelines.schema.HIERARCHY_COLUMNS`.
    """
    return frame.with_columns(pl.col(c).cast(pl.Int32) for c in HIERARCHY_COLUMNS)


def build_features(
    panel: pl.LazyFrame, *, config: FeatureConfig | None = None
) -> tuple[pl.LazyFrame, FeatureSpec]:
    """Run every feature step on a panel that already has ``y``.

    Args:
        panel: one row per series-day, contiguous days per series, with ``y``,
            ``stock_hour6_22_cnt``, covariates and hierarchy ids (see :func:`build_panel`).
        config: window choices; defaults to :class:`FeatureConfig`.

    Returns:
        The panel with feature columns added (sorted by ``series_id``, ``dt``) and the spec.
    """
    cfg = config or FeatureConfig()
    out = (
        panel.sort("series_id", "dt")
        .pipe(add_lag_features, lags=cfg.lags, seasonal_lags=cfg.seasonal_lags)
        .pipe(add_rolling_features, windows=cfg.windows)
        .pipe(add_conditional_means)
        .pipe(add_stockout_features, windows=cfg.stockout_windows)
        .pipe(add_calendar_features)
        .pipe(add_covariate_features)
        .pipe(add_static_features)
    )
    names = out.collect_schema().names()
    origin = tuple(
        n
        for n in names
        if n.startswith(
            ("target_rolling", "target_expanding", "stockout_", "imputed_share", "recovered_share")
        )
        or n in {f"target_lag{k}" for k in cfg.lags}
    )
    seasonal = tuple(n for n in names if n in {f"target_lag{k}" for k in cfg.seasonal_lags})
    target_day = (
        *seasonal,
        *(n for n in names if n.startswith("target_seasonal_mean")),
        "dow",
        "day_of_month",
        "is_weekend",
        *COVARIATE_COLUMNS,
        "discount_rel_w28",
        "activity_rolling_mean_w28",
    )
    return out, FeatureSpec(origin=origin, target_day=target_day)


def build_panel(
    history: pl.LazyFrame, future: pl.LazyFrame | None, *, target: Target
) -> pl.LazyFrame:
    """Stack history and forecast days into one panel with the target ``y``.

    Args:
        history: daily rows (``series_id``, hub columns, ``dt`` as Date); for the recovered
            target also ``demand_amount`` and ``imputed_hours`` from stage 1.
        future: forecast-day rows with known covariates, or None. Their realised columns
            (sales, stockouts, demand) are nulled here: the leakage guard for evaluation,
            where eval.parquet carries the answers.
        target: ``"recovered"`` or ``"censored"``.

    Returns:
        The panel sorted by ``series_id``, ``dt``, with ``y`` and an ``is_future`` flag.
    """
    # Hourly lists are stage-1 inputs; on eval rows they would carry the answers.
    drop = ("hours_sale", "hours_stock_status", "hours_demand")
    history = history.drop(drop, strict=False)
    hist = history.pipe(select_target, target=target).with_columns(pl.lit(False).alias("is_future"))
    if future is None:
        return hist.sort("series_id", "dt")
    cols = hist.collect_schema()
    future = future.drop(drop, strict=False)
    fut_names = future.collect_schema().names()
    fut = future.with_columns(
        *(pl.lit(None, dtype=cols[c]).alias(c) for c in PAST_ONLY_COLUMNS if c in cols),
        pl.lit(True).alias("is_future"),
    )
    fut = fut.select(
        pl.col(c)
        if c in fut_names or c in PAST_ONLY_COLUMNS or c == "is_future"
        else pl.lit(None, dtype=cols[c]).alias(c)
        for c in cols.names()
    )
    return pl.concat([hist, fut], how="vertical_relaxed").sort("series_id", "dt")
