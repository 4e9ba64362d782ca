"""A global LightGBM forecaster, direct multi-horizon over a horizon-stacked frame.

Strategy (chosen by measurement, see benchmarks/forecast.py): *direct*, not recursive. For
a target day t and horizon h, the origin-role features are read at day t-h+1 (they describe
the series up to day t-h, the forecast origin), the target-day features at day t itself, and
``horizon`` is a feature. One model serves all 7 horizons (``strategy="global"``) or one
model per horizon (``strategy="per_horizon"``). Recursion is avoided because it needs the
feature code inside the model and compounds its own errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import lightgbm as lgb
import numpy as np
import polars as pl

from models.constants import series_day_increasing
from models.forecasters.base import HORIZON, Forecaster, last_history_day


@dataclass(frozen=True)
class LGBMConfig:
    """LightGBM options. ``origin_features``/``target_day_features``/``categorical`` name
    the panel columns by role (the pipeline's FeatureSpec fills them in)."""

    origin_features: tuple[str, ...] = ()
    target_day_features: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    objective: Literal["tweedie", "poisson", "l2", "l1"] = "tweedie"
    tweedie_variance_power: float = 1.2
    strategy: Literal["global", "per_horizon"] = "global"
    # 100 trees at 0.2 and a third of the features per tree: on all 50k real series acc
    # 0.7037 against 0.7054 for 300 trees at 0.08 and half the features, for 45.9 against
    # 109.4 CPU s of fit (benchmarks/results/forecast_ablation_50k.json, README stage 2).
    n_estimators: int = 100
    learning_rate: float = 0.2
    num_leaves: int = 63
    min_child_samples: int = 100
    feature_fraction: float = 0.35
    bagging_fraction: float = 0.7
    train_days: int = 56
    row_fraction: float = 0.08
    # The calibration model (see Forecaster.fit) only supplies residual quantiles and
    # ensemble weights, then is thrown away: a tenth of the rows gave the same bands
    # (P10-P90 coverage 0.78 vs 0.77 on 50k real series) for a fifth of its cost.
    calibration_row_scale: float = 0.1
    max_bin: int = 63
    num_threads: int = 2
    seed: int = 0
    debias: bool = False
    extra_params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.row_fraction <= 1 or not 0 < self.calibration_row_scale <= 1:
            raise ValueError("row_fraction and calibration_row_scale must be in (0, 1]")
        if self.n_estimators < 1 or self.train_days < 1:
            raise ValueError("n_estimators and train_days must be >= 1")


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


class LGBMForecaster(Forecaster):
    """Global LightGBM, direct over 7 horizons. Fitted: ``boosters_`` (one, or one per horizon)."""

    name = "lgbm"

    def _feature_names(self, panel: pl.DataFrame) -> list[str]:
        c = self.config
        return [*c.origin_features, *c.target_day_features, *c.categorical, "horizon"]

    def _params(self) -> dict[str, object]:
        c = self.config
        params: dict[str, object] = {
            "objective": {"l2": "regression", "l1": "regression_l1"}.get(c.objective, c.objective),
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            "min_child_samples": c.min_child_samples,
            "feature_fraction": c.feature_fraction,
            "bagging_fraction": c.bagging_fraction,
            "bagging_freq": 1 if c.bagging_fraction < 1 else 0,
            "max_bin": c.max_bin,
            "num_threads": c.num_threads,
            "seed": c.seed,
            "verbose": -1,
            "max_cat_to_onehot": 8,
            "cat_smooth": 20.0,
        }
        if c.objective == "tweedie":
            params["tweedie_variance_power"] = c.tweedie_variance_power
        params.update(c.extra_params)
        return params

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return frame.select(pl.col(n).cast(pl.Float32) for n in self.feature_names_).to_numpy()

    def _fit_calibration_model(self, panel: pl.DataFrame) -> None:
        c = self.config
        self._fit_core(panel, row_fraction=c.row_fraction * c.calibration_row_scale)

    def _fit_core(self, panel: pl.DataFrame, *, row_fraction: float | None = None) -> None:
        c = self.config
        origin = last_history_day(panel)
        first = origin - timedelta(days=c.train_days - 1)
        keep = ("series_id", "dt", "y", *c.target_day_features, *c.categorical)
        rows = ~pl.col("is_future") & (pl.col("dt") >= first) & pl.col("y").is_not_null()
        # Only rows that can anchor a training target are needed (cheaper stacking).
        near = panel.filter(pl.col("dt") >= first - timedelta(days=HORIZON - 1))
        if not series_day_increasing(near):  # panels come sorted; sorting 4.5 M rows costs 5 s
            near = near.sort("series_id", "dt")
        train = stack_horizons(
            near,
            origin_features=c.origin_features,
            keep=keep,
            horizons=range(1, HORIZON + 1),
            target_rows=rows,
            fraction=c.row_fraction if row_fraction is None else row_fraction,
            seed=c.seed,
        )
        cats = [self.feature_names_.index(n) for n in c.categorical]
        groups = (
            [train]
            if c.strategy == "global"
            else [train.filter(pl.col("horizon") == h) for h in range(1, HORIZON + 1)]
        )
        self.boosters_ = []
        for g in groups:
            data = lgb.Dataset(
                self._matrix(g),
                label=g["y"].to_numpy(),
                feature_name=self.feature_names_,
                categorical_feature=cats,
                free_raw_data=True,
            )
            self.boosters_.append(lgb.train(self._params(), data, num_boost_round=c.n_estimators))
        self.train_rows_ = train.height
        self.fit_work_ = getattr(self, "fit_work_", 0.0) + train.height * c.n_estimators

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        origin = last_history_day(panel)
        fut = forecast_rows(panel, origin, c.origin_features, c.target_day_features + c.categorical)
        yhat: np.ndarray = np.zeros(fut.height)
        if len(self.boosters_) == 1:
            yhat = np.asarray(
                self.boosters_[0].predict(self._matrix(fut), num_threads=c.num_threads)
            )
        else:
            h = fut["horizon"].to_numpy()
            x = self._matrix(fut)
            for i, booster in enumerate(self.boosters_):
                mask = h == i + 1
                if mask.any():
                    yhat[mask] = booster.predict(x[mask], num_threads=c.num_threads)
        return fut.select("series_id", "dt").with_columns(pl.Series("yhat", np.maximum(yhat, 0.0)))

    def feature_importance(self) -> pl.DataFrame:
        """Gain importance of each feature, summed over boosters."""
        gain = sum(b.feature_importance("gain") for b in self.boosters_)
        return pl.DataFrame({"feature": self.feature_names_, "gain": gain}).sort(
            "gain", descending=True
        )
