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
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from datetime import date, timedelta
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

PRED_COLUMNS: tuple[str, ...] = ("yhat", "yhat_p10", "yhat_p50", "yhat_p90")
HORIZON = 7


def last_history_day(panel: pl.DataFrame) -> date:
    """The forecast origin: the last day with ``is_future`` false."""
    value = panel.filter(~pl.col("is_future"))["dt"].max()
    if value is None:
        raise ValueError("the panel has no history rows")
    return value  # type: ignore[return-value]


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


class ConformalBands:
    """Per-bin empirical residual quantiles, binned by the point forecast.

    Attributes:
        edges_: upper edges of the ``yhat`` bins.
        offsets_: residual quantiles (``y - yhat``) per bin, shape (bins, 3) for P10/P50/P90.
    """

    def __init__(self, *, bins: int = 20, min_rows: int = 50) -> None:
        self.bins = bins
        self.min_rows = min_rows

    def fit(self, yhat: np.ndarray, y: np.ndarray) -> Self:
        """Learn residual quantiles from out-of-sample forecasts ``yhat`` of ``y``."""
        n_bins = int(max(1, min(self.bins, len(y) // self.min_rows)))
        edges = (
            np.quantile(yhat, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
        )
        self.edges_ = np.unique(edges)
        idx = np.searchsorted(self.edges_, yhat, side="right")
        resid = y - yhat
        self.offsets_ = np.zeros((len(self.edges_) + 1, 3))
        for b in range(len(self.edges_) + 1):
            r = resid[idx == b]
            if len(r) == 0:
                r = resid
            self.offsets_[b] = np.quantile(r, [0.1, 0.5, 0.9])
        return self

    def apply(self, yhat: np.ndarray) -> np.ndarray:
        """P10/P50/P90 for point forecasts ``yhat``, clipped at 0 and kept monotone."""
        idx = np.searchsorted(self.edges_, yhat, side="right")
        q = np.maximum(yhat[:, None] + self.offsets_[idx], 0.0)
        return np.sort(q, axis=1)


class Forecaster(ABC):
    """A global 7-day forecaster over the panel.

    Attributes set by :meth:`fit`: ``target_``, ``train_start_``, ``train_end_``,
    ``feature_names_`` (what the model reads), ``bands_`` (conformal calibration),
    ``calibration_`` (the calibration-window forecasts; not pickled).
    """

    name: ClassVar[str] = "base"

    def __init__(self, config: Any, *, target: str = "recovered") -> None:
        self.config = config
        self.target = target

    # -- the per-model parts --------------------------------------------------------------
    @abstractmethod
    def _fit_core(self, panel: pl.DataFrame) -> None:
        """Fit on the history rows of ``panel`` (its forecast days are not read)."""

    @abstractmethod
    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        """Point forecasts (``series_id``, ``dt``, ``yhat``) for the panel's forecast days."""

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
        self, panel: pl.DataFrame, *, calibration_days: int = HORIZON, refit: bool = True
    ) -> Self:
        """Fit on history, holding out the last ``calibration_days`` for conformal bands.

        Args:
            panel: the panel; only ``is_future == False`` rows are read.
            calibration_days: the calibration window after the fitting origin.
            refit: after calibrating, fit again on all history. The held-out week is the
                freshest data: a LightGBM model that never trains on it scored 1.3 acc
                points lower on real data (README, stage 2). The bands, bias factor and
                ensemble weights stay those measured out of sample on the first fit.
        """
        hist = panel.filter(~pl.col("is_future"))
        end = last_history_day(hist)
        origin = end - timedelta(days=calibration_days)
        self.target_ = self.target
        self.train_start_ = hist["dt"].min()
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

    def _calibrate(self, cal: pl.DataFrame) -> None:
        rows = cal.filter(pl.col("clean")) if cal["clean"].sum() >= 100 else cal
        self.bias_ = 1.0
        if getattr(self.config, "debias", False):
            pred_sum = float(rows["yhat"].sum())
            self.bias_ = float(rows["actual"].sum()) / pred_sum if pred_sum > 0 else 1.0
        y = rows["actual"].to_numpy()
        self.bands_ = ConformalBands().fit(rows["yhat"].to_numpy() * self.bias_, y)
        self.cqr_: np.ndarray | None = None
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
        if getattr(self, "cqr_", None) is not None and "yhat_p10" in point.columns:
            lo, mid, hi = self.cqr_  # type: ignore[misc]
            q = np.stack(
                [
                    point["yhat_p10"].to_numpy() - lo,
                    point["yhat_p50"].to_numpy() + mid,
                    point["yhat_p90"].to_numpy() + hi,
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

    # -- self-description and serialisation -----------------------------------------------
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

    def to_bytes(self) -> bytes:
        """Serialise the fitted model (pickle). Paths are the caller's business."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> Forecaster:
        """Load a model written by :meth:`to_bytes`."""
        obj = pickle.loads(data)
        if not isinstance(obj, Forecaster):
            raise TypeError(f"not a freshcast forecaster: {type(obj).__name__}")
        return obj
