"""A weighted combination of forecasters, with weights learned on the calibration window.

Each member's ``fit`` already forecasts the 7 days after its fitting origin (the last 7
history days, never the test window). The ensemble chooses non-negative weights summing
to one that minimise WAPE on those days, then conformalises its own point forecast there.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from models.constants import HORIZON
from models.forecasters.base import Forecaster
from models.forecasters.update import Probe, UpdateConfig


@dataclass(frozen=True)
class EnsembleConfig:
    """Weight search options: a simplex grid with this step."""

    step: float = 0.05
    # SSA joins lgbm and neural: on the real split it is as accurate as either, and its
    # errors differ (measured in benchmarks/forecast.py).
    members: tuple[str, ...] = ("lgbm", "neural", "ssa")
    debias: bool = False


class EnsembleForecaster(Forecaster):
    """Fitted: ``members_`` (fitted forecasters) and ``weights_`` (one per member)."""

    name = "ensemble"

    config: EnsembleConfig
    members_: list[Forecaster]
    weights_: npt.NDArray[np.float64]

    def __init__(
        self, config: EnsembleConfig, *, members: list[Forecaster], target: str = "recovered"
    ) -> None:
        super().__init__(config, target=target)
        self.members = members

    def _fit_core(self, panel: pl.DataFrame) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        preds = [
            m.predict(panel).select("series_id", "dt", pl.col("yhat").alias(f"m{i}"))
            for i, m in enumerate(self.members_)
        ]
        out = preds[0]
        for p in preds[1:]:
            out = out.join(p, on=["series_id", "dt"])
        yhat = sum(w * out[f"m{i}"].to_numpy() for i, w in enumerate(self.weights_))
        return out.select("series_id", "dt").with_columns(
            pl.Series("yhat", np.asarray(yhat, dtype=float))
        )

    def fit(
        self,
        panel: pl.DataFrame,
        *,
        calibration_days: int = HORIZON,
        refit: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> Self:
        """Fit every member, then learn the weights on their calibration forecasts."""
        self._start_records(metadata)
        self.members_ = [
            m.fit(panel, calibration_days=calibration_days, refit=refit) for m in self.members
        ]
        return self._fit_weights()

    @classmethod
    def from_fitted(
        cls, config: EnsembleConfig, members: list[Forecaster], *, target: str
    ) -> EnsembleForecaster:
        """Combine members that were just fitted (their calibration forecasts are in memory)."""
        ens = cls(config, members=members, target=target)
        ens.members_ = members
        return ens._fit_weights()

    def _fit_weights(self) -> Self:
        cal = self.members_[0].calibration_.select(
            "series_id", "dt", "actual", "clean", pl.col("yhat").alias("m0")
        )
        for i, m in enumerate(self.members_[1:], start=1):
            cal = cal.join(
                m.calibration_.select("series_id", "dt", pl.col("yhat").alias(f"m{i}")),
                on=["series_id", "dt"],
            )
        rows = cal.filter(pl.col("clean")) if cal["clean"].sum() >= 100 else cal
        x = np.stack(
            [rows[f"m{i}"].to_numpy() * m.bias_ for i, m in enumerate(self.members_)], axis=1
        )
        y = rows["actual"].to_numpy()
        self.weights_ = _simplex_search(x, y, self.config.step)
        first = self.members_[0]
        self.target_, self.train_start_, self.train_end_ = (
            first.target_,
            first.train_start_,
            first.train_end_,
        )
        self.feature_names_ = sorted({f for m in self.members_ for f in m.feature_names_})
        xall = np.stack(
            [cal[f"m{i}"].to_numpy() * m.bias_ for i, m in enumerate(self.members_)], axis=1
        )
        ens = cal.select("series_id", "dt", "actual", "clean").with_columns(
            pl.Series("yhat", xall @ self.weights_)
        )
        self._calibrate(ens)
        self.calibration_ = ens
        return self

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
        """Update every member with its own default update; the weights, bias and bands
        stay those of the fit. One config cannot suit every member, so none is taken;
        probes are not scored (the members' curves are not the ensemble's)."""
        if config is not None:
            raise ValueError("an ensemble updates each member with its own default config")
        infos = [
            m.update(panel, windows, through=through, replay_pool=replay_pool)
            for m in self.members_
        ]
        return {
            "work": float(sum(i["work"] for i in infos)),
            "rows": sum(i["rows"] for i in infos),
            "probe_curve": [],
            "probe_seconds": 0.0,
            "probe_cpu_seconds": 0.0,
            "members": infos,
        }

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["members"] = [m.describe() for m in getattr(self, "members_", self.members)]
        out["weights"] = [float(w) for w in getattr(self, "weights_", [])]
        return out


def _simplex_search(x: np.ndarray, y: np.ndarray, step: float) -> np.ndarray:
    """Weights on a simplex grid (non-negative, summing to 1) with the lowest WAPE."""
    k = x.shape[1]
    ticks = np.round(np.arange(0, 1 + 1e-9, step), 6)
    best, best_w = np.inf, np.full(k, 1 / k)
    for head in itertools.product(ticks, repeat=k - 1):
        last = 1 - sum(head)
        if last < -1e-9:
            continue
        w = np.array([*head, max(last, 0.0)])
        err = np.abs(x @ w - y).sum()
        if err < best:
            best, best_w = err, w
    return best_w
