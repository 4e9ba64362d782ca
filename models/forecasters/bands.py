"""Conformal quantile bands: per-bin empirical residual quantiles of the point forecast."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt

from models.constants import QUANTILES

FloatArray = npt.NDArray[np.float64]


class ConformalBands:
    """Per-bin empirical residual quantiles, binned by the point forecast.

    Attributes:
        edges_: upper edges of the ``yhat`` bins.
        offsets_: residual quantiles (``y - yhat``) per bin, shape (bins, 3) for P10/P50/P90.
    """

    edges_: FloatArray
    offsets_: FloatArray

    def __init__(self, *, bins: int = 20, min_rows: int = 50) -> None:
        self.bins = bins
        self.min_rows = min_rows

    def fit(self, yhat: FloatArray, y: FloatArray) -> Self:
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
            self.offsets_[b] = np.quantile(r, list(QUANTILES))
        return self

    def apply(self, yhat: FloatArray) -> FloatArray:
        """P10/P50/P90 for point forecasts ``yhat``, clipped at 0 and kept monotone."""
        idx = np.searchsorted(self.edges_, yhat, side="right")
        q = np.maximum(yhat[:, None] + self.offsets_[idx], 0.0)
        return np.sort(q, axis=1)
