"""A global LightGBM forecaster, direct multi-horizon over a horizon-stacked frame.

Strategy (chosen by measurement, see benchmarks/forecast.py): *direct*, not recursive. For
a target day t and horizon h, the origin-role features are read at day t-h+1 (they describe
the series up to day t-h, the forecast origin), the target-day features at day t itself, and
``horizon`` is a feature. One model serves all 7 horizons (``strategy="global"``) or one
model per horizon (``strategy="per_horizon"``). Recursion is avoided because it needs the
feature code inside the model and compounds its own errors.

The stacked rows are built in :mod:`models.forecasters.lgbm_rows`; the continual update
(continue or refit the boosters on a refresh set) is :mod:`models.forecasters.lgbm_update`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl

from models.constants import HORIZON, series_day_increasing
from models.forecasters.base import Forecaster
from models.forecasters.lgbm_rows import forecast_rows, stack_horizons
from models.forecasters.lgbm_update import train_on_windows, update_boosters
from models.forecasters.panel import last_history_day
from models.forecasters.update import LGBM_REFRESH, Probe, UpdateConfig


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


class LGBMForecaster(Forecaster):
    """Global LightGBM, direct over 7 horizons.

    Fitted: ``boosters_`` (one, or one per horizon) and ``train_rows_`` (stacked rows of the
    last fit). ``replay_scores_``: raw scores of replayable rows cached by :meth:`update`
    (see :mod:`models.forecasters.lgbm_update`); None before the first update.

    The boosters are never modified in place: fit and update build new ones. That is what
    makes :meth:`copy` cheap.
    """

    name = "lgbm"

    config: LGBMConfig
    boosters_: list[lgb.Booster]
    train_rows_: int
    replay_scores_: pl.DataFrame | None = None

    def _feature_names(self, panel: pl.DataFrame) -> list[str]:
        c = self.config
        return [*c.origin_features, *c.target_day_features, *c.categorical, "horizon"]

    def params(self) -> dict[str, Any]:
        """The LightGBM training parameters of the full fit."""
        c = self.config
        params: dict[str, Any] = {
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

    def matrix(self, frame: pl.DataFrame) -> npt.NDArray[np.float32]:
        """The features the model reads from stacked rows, in ``feature_names_`` order."""
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
                self.matrix(g),
                label=g["y"].to_numpy(),
                feature_name=self.feature_names_,
                categorical_feature=cats,
                free_raw_data=True,
            )
            self.boosters_.append(lgb.train(self.params(), data, num_boost_round=c.n_estimators))
        self.train_rows_ = train.height
        self.fit_work_ = getattr(self, "fit_work_", 0.0) + train.height * c.n_estimators

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        origin = last_history_day(panel)
        fut = forecast_rows(panel, origin, c.origin_features, c.target_day_features + c.categorical)
        yhat: npt.NDArray[np.float64] = np.zeros(fut.height)
        if len(self.boosters_) == 1:
            yhat = np.asarray(
                self.boosters_[0].predict(self.matrix(fut), num_threads=c.num_threads)
            )
        else:
            h = fut["horizon"].to_numpy()
            x = self.matrix(fut)
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

    # -- continual learning (see models.forecasters.lgbm_update) ----------------------------
    def _update_core(
        self,
        panel: pl.DataFrame,
        windows: pl.DataFrame,
        *,
        through: date,
        config: UpdateConfig | None,
        probes: list[Probe],
        replay_pool: pl.DataFrame | None,
    ) -> dict[str, Any]:
        """``continue`` (add trees) or ``refit`` (leaf values), :data:`LGBM_REFRESH` by default.

        With ``replay_pool``, the raw scores of the rows of windows that may be replayed are
        kept in ``replay_scores_``, so a later replay only runs the trees added since.
        """
        cfg = config if config is not None else LGBM_REFRESH
        # Lazy: only the windows' rows are read, not a filtered copy of the whole panel.
        hist = panel.lazy().filter(pl.col("dt") <= through)
        return update_boosters(self, hist, windows, cfg, probes, replay_pool)

    def _fit_windows_core(
        self, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int
    ) -> dict[str, Any]:
        """The full fit's trees and row share on the windows' stacked rows (``seed`` unused:
        the config's seed draws the rows, as in the full fit)."""
        return train_on_windows(self, panel.filter(pl.col("dt") <= through), windows)

    def copy(self) -> LGBMForecaster:
        """An independent copy that shares the boosters: an update or fit replaces them and
        never modifies one, so a shallow copy is a copy (a deep one would serialise the
        whole ensemble for nothing). The records are the copy's own."""
        out = copy.copy(self)
        out.metadata_, out.refresh_log_ = dict(self.metadata_), list(self.refresh_log_)
        return out
