"""The forecaster interface and the pieces every forecaster shares.

All forecasters fit and predict over the same *panel* frame: one row per series-day with

* ``series_id``, ``dt`` (Date), ``is_future`` (bool): history rows first, forecast days last;
* ``y``: the target (null on forecast days), ``stock_hour6_22_cnt`` (null on forecast days);
* hierarchy ids, known-future covariates, and whatever feature columns the model reads.

``predict`` forecasts the ``is_future`` rows (up to 7 days after the last history day) and
returns ``series_id``, ``dt``, ``yhat``, ``yhat_p10``, ``yhat_p50``, ``yhat_p90``.

Quantiles are conformal: each model holds out the last 7 history days as a calibration
window (never the test window), forecasts it from the origin before it, and learns per-bin
empirical residual quantiles. The same window gives the ensemble its weights.

Besides fit and predict, every forecaster learns new data in place (:meth:`Forecaster.update`,
the continual refresh), saves and loads itself, and carries the caller's records
(``metadata_``, ``refresh_log_``) as declared attributes.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from models.constants import HORIZON, Target, as_target

# Pickled forecasters name their bands' class as ``models.forecasters.base.ConformalBands``
# (where it was defined before bands.py): importing it here keeps those models loadable.
from models.forecasters.bands import ConformalBands as ConformalBands
from models.forecasters.panel import (
    calibration_actuals,
    check_windows,
    first_day,
    last_history_day,
    with_origin,
)
from models.forecasters.update import Probe, UpdateConfig

FloatArray = npt.NDArray[np.float64]


class Forecaster(ABC):
    """A global 7-day forecaster over the panel: fit, predict, update, save and load.

    Attributes set by :meth:`fit` (what pipelines may read; every fitted forecaster has them):
        target_: the target the model was fitted on (``"recovered"`` or ``"censored"``).
        train_start_, train_end_: the first and last history day it has learned;
            :meth:`update` moves ``train_end_`` to the refresh day.
        feature_names_: the panel columns the model reads.
        bias_: the factor on the point forecast (1 unless ``config.debias``).
        bands_: the conformal calibration of the quantiles; ``cqr_``: the shifts of a
            quantile head's own quantiles instead (None without one).
        calibration_: the calibration-window forecasts (not pickled).

    Cost accounting, set by :meth:`Forecaster.fit` (so not on an ensemble, whose members
    have them):
        fit_work_: compute units of the fit (0 where a model does not count them).
        fit_count_: models the fit trained (2 with the refit after calibrating, else 1).

    Records the caller keeps with the model (plain data, saved with it):
        metadata_: set by :meth:`fit` from its ``metadata`` argument, e.g. how the model's
            features were built; empty by default.
        refresh_log_: one entry per continual refresh since the fit (:meth:`log_refresh`).
    """

    name: ClassVar[str] = "base"

    config: Any
    target_: Target
    train_start_: date
    train_end_: date
    feature_names_: list[str]
    bias_: float
    bands_: ConformalBands
    cqr_: FloatArray | None = None
    fit_work_: float
    fit_count_: int
    calibration_: pl.DataFrame
    metadata_: dict[str, Any]
    refresh_log_: list[dict[str, Any]]

    def __init__(self, config: Any, *, target: str = "recovered") -> None:
        self.config = config
        self.target = target
        self.metadata_ = {}
        self.refresh_log_ = []

    # -- the per-model parts --------------------------------------------------------------
    @abstractmethod
    def _fit_core(self, panel: pl.DataFrame) -> None:
        """Fit on the history rows of ``panel`` (its forecast days are not read)."""

    @abstractmethod
    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        """Point forecasts (``series_id``, ``dt``, ``yhat``) for the panel's forecast days."""

    @abstractmethod
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
        """Learn ``windows`` in place (see :meth:`update`); ``panel`` is not yet cut at
        ``through``. Returns ``work``, ``rows``, ``probe_curve``, ``probe_seconds`` and
        ``probe_cpu_seconds``."""

    def _fit_windows_core(
        self, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int
    ) -> dict[str, Any]:
        raise NotImplementedError(
            f"{self.name!r} has no recipe for training on windows alone; "
            "only lgbm and neural do (the continual protocol's arm A4)"
        )

    def _feature_names(self, panel: pl.DataFrame) -> list[str]:
        return ["y"]

    def _fit_calibration_model(self, panel: pl.DataFrame) -> None:
        """Fit the model whose held-out forecasts set the bands (and ensemble weights).

        The same recipe as the final fit by default; a model may make it cheaper, since only
        its residual distribution is kept when ``fit`` refits on all history.
        """
        self._fit_core(panel)

    # -- shared fit/predict ---------------------------------------------------------------
    def fit(
        self,
        panel: pl.DataFrame,
        *,
        calibration_days: int = HORIZON,
        refit: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> Self:
        """Fit on history, holding out the last ``calibration_days`` for conformal bands.

        Args:
            panel: the panel; only ``is_future == False`` rows are read.
            calibration_days: the calibration window after the fitting origin.
            refit: after calibrating, fit again on all history. The held-out week is the
                freshest data: a LightGBM model that never trains on it scored 1.3 acc
                points lower on real data (README, stage 2). The bands, bias factor and
                ensemble weights stay those measured out of sample on the first fit.
            metadata: plain data the caller records with the model (``metadata_``). A fit
                starts a new model, so it also empties ``refresh_log_``.
        """
        self._start_records(metadata)
        hist = panel.filter(~pl.col("is_future"))
        end = last_history_day(hist)
        origin = end - timedelta(days=calibration_days)
        self.target_ = as_target(self.target)
        self.train_start_ = first_day(hist)
        self.train_end_ = end
        self.feature_names_ = self._feature_names(hist)
        cut = with_origin(hist, origin, horizon=calibration_days)
        self.fit_count_ = 2 if refit else 1  # models trained, for cost accounting
        self.fit_work_ = 0.0  # a model's _fit_core may add its compute units here
        self._fit_calibration_model(cut)
        cal = self._predict_point(cut).join(
            calibration_actuals(hist, origin, horizon=calibration_days), on=["series_id", "dt"]
        )
        self._calibrate(cal)
        self.calibration_ = cal
        if refit:
            self._fit_core(hist)
        return self

    def _start_records(self, metadata: Mapping[str, Any] | None) -> None:
        self.metadata_ = dict(metadata or {})
        self.refresh_log_ = []

    def _calibrate(self, cal: pl.DataFrame) -> None:
        rows = cal.filter(pl.col("clean")) if cal["clean"].sum() >= 100 else cal
        self.bias_ = 1.0
        if getattr(self.config, "debias", False):
            pred_sum = float(rows["yhat"].sum())
            self.bias_ = float(rows["actual"].sum()) / pred_sum if pred_sum > 0 else 1.0
        y = rows["actual"].to_numpy()
        self.bands_ = ConformalBands().fit(rows["yhat"].to_numpy() * self.bias_, y)
        self.cqr_ = None
        if "yhat_p10" in rows.columns:
            # Conformalised quantile regression: widen/narrow the head's own quantiles so
            # each tail holds 10 % of the calibration rows.
            self.cqr_ = np.array(
                [
                    np.quantile(rows["yhat_p10"].to_numpy() - y, 0.9),
                    np.quantile(y - rows["yhat_p50"].to_numpy(), 0.5),
                    np.quantile(y - rows["yhat_p90"].to_numpy(), 0.9),
                ]
            )

    def predict(self, panel: pl.DataFrame) -> pl.DataFrame:
        """Forecast the panel's ``is_future`` rows.

        Returns:
            ``series_id``, ``dt``, ``yhat``, ``yhat_p10``, ``yhat_p50``, ``yhat_p90``.
        """
        point = self._predict_point(panel)
        return self.with_bands(point)

    def with_bands(self, point: pl.DataFrame) -> pl.DataFrame:
        """Apply the bias factor and conformal bands to a point forecast frame."""
        yhat = np.maximum(point["yhat"].to_numpy() * self.bias_, 0.0)
        cqr = self.cqr_  # None on models pickled before it (the class default)
        if cqr is not None and "yhat_p10" in point.columns:
            q = np.stack(
                [
                    point["yhat_p10"].to_numpy() - cqr[0],
                    point["yhat_p50"].to_numpy() + cqr[1],
                    point["yhat_p90"].to_numpy() + cqr[2],
                ],
                axis=1,
            )
            q = np.sort(np.maximum(q, 0.0), axis=1)
        else:
            q = self.bands_.apply(yhat)
        return point.select("series_id", "dt").with_columns(
            pl.Series("yhat", yhat),
            pl.Series("yhat_p10", q[:, 0]),
            pl.Series("yhat_p50", q[:, 1]),
            pl.Series("yhat_p90", q[:, 2]),
        )

    # -- continual learning ---------------------------------------------------------------
    def update(
        self,
        panel: pl.DataFrame,
        windows: pl.DataFrame,
        *,
        through: date,
        config: UpdateConfig | None = None,
        probes: Sequence[Probe] = (),
        replay_pool: pl.DataFrame | None = None,
    ) -> dict[str, Any]:
        """Learn the windows of a refresh set, in place (the continual refresh).

        The conformal bands and the bias factor are kept from the last full fit: a refresh
        moves the point forecast a little, a weekly retrain recalibrates.

        Args:
            panel: feature panel (``series_id``, ``dt``, ``y``, ``is_future`` and the model's
                feature columns), contiguous days per series; rows after ``through`` are not
                read, so no target after it can be.
            windows: ``series_id``, ``dt`` (last target day) of the refresh set, and optionally
                ``replay`` (bool: the window was drawn from the replay buffer).
            through: the refresh day; a window ending later is an error.
            config: update options; None takes the model's own default.
            probes: fixed past tasks scored during the update (the stability curve).
            replay_pool: ``series_id``, ``dt`` of the windows that may be replayed later (the
                replay buffer); a model may keep per-window state for them.

        Returns:
            ``work`` (compute units), ``rows``, ``windows``, ``probe_curve``, and
            ``probe_seconds`` and ``probe_cpu_seconds`` (wall and CPU time spent scoring
            probes, not part of the update's cost). ``train_end_`` moves to ``through``.
        """
        check_windows(windows, through)
        info = self._update_core(
            panel,
            windows,
            through=through,
            config=config,
            probes=list(probes),
            replay_pool=replay_pool,
        )
        self.train_end_ = through
        return {**info, "windows": windows.height}

    def fit_windows(
        self, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int = 0
    ) -> dict[str, Any]:
        """The model's own recipe trained from scratch on ``windows`` only, in place (the
        continual protocol's arm A4). Bands and bias stay those of the last full fit.

        Returns the same info as :meth:`update`; ``train_end_`` moves to ``through``.
        Raises NotImplementedError for a forecaster without such a recipe.
        """
        check_windows(windows, through)
        info = self._fit_windows_core(panel, windows, through=through, seed=seed)
        self.train_end_ = through
        return {**info, "windows": windows.height}

    def log_refresh(self, entry: Mapping[str, Any]) -> None:
        """Append one refresh's record to ``refresh_log_``.

        The log is replaced, not appended to in place, so a shallow copy of this model
        (which shares the old list) keeps its own log.
        """
        self.refresh_log_ = [*self.refresh_log_, dict(entry)]

    def copy(self) -> Forecaster:
        """An independent copy: updating it leaves this model as it is (a deep copy)."""
        return Forecaster.load(self.save())

    # -- self-description and serialisation -----------------------------------------------
    def feature_importance(self) -> pl.DataFrame | None:
        """``feature`` and ``gain`` per feature, for models that measure it; else None."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the model is: name, target, training window, features and config."""
        return {
            "model": self.name,
            "target": getattr(self, "target_", self.target),
            "train_start": str(getattr(self, "train_start_", None)),
            "train_end": str(getattr(self, "train_end_", None)),
            "features": list(getattr(self, "feature_names_", [])),
            "config": repr(self.config),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("calibration_", None)  # large, and only needed while fitting an ensemble
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models pickled before the records were declared: the pipeline attached its feature
        # config as ``pipeline_meta_``; that is ``metadata_`` now.
        state = dict(state)
        legacy = state.pop("pipeline_meta_", None)
        state.setdefault("metadata_", dict(legacy or {}))
        state.setdefault("refresh_log_", [])
        self.__dict__.update(state)

    def save(self) -> bytes:
        """Serialise the fitted model (pickle). Paths are the caller's business."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(data: bytes) -> Forecaster:
        """Load a model written by :meth:`save` (or by ``to_bytes``, its former name)."""
        obj = pickle.loads(data)
        if not isinstance(obj, Forecaster):
            raise TypeError(f"not a freshcast forecaster: {type(obj).__name__}")
        return obj
