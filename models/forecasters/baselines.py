"""Baselines: the published SSA method, seasonal naive, and a 28-day moving average.

They read only ``y`` (and SSA the known-future ``discount``, ``holiday_flag``, ``precpt``)
of the panel, so they run on either target unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from models.forecasters.base import Forecaster
from models.forecasters.panel import last_history_day
from models.forecasters.update import Probe, UpdateConfig, no_work

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BaselineConfig:
    """Options shared by the baselines."""

    window: int = 28
    chunk_series: int = 5_000
    debias: bool = False


def panel_matrix(panel: pl.DataFrame, column: str) -> tuple[np.ndarray, list[date], np.ndarray]:
    """Pivot one column of the panel to a (series, day) matrix.

    Returns the sorted series ids, the sorted days and the matrix (NaN where missing).
    """
    wide = (
        panel.select("series_id", "dt", pl.col(column).cast(pl.Float64))
        .pivot(on="dt", index="series_id", values=column, sort_columns=True)
        .sort("series_id")
    )
    days = [date.fromisoformat(str(c)) for c in wide.columns[1:]]
    order = np.argsort(np.array(days, dtype="datetime64[D]"))
    mat = wide.drop("series_id").to_numpy()[:, order].astype(float)
    return wide["series_id"].to_numpy(), [days[i] for i in order], mat


def _future_frame(series: np.ndarray, days: list[date], values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series_id": np.repeat(series, len(days)),
            "dt": np.tile(np.array(days, dtype="datetime64[D]"), len(series)),
            "yhat": values.reshape(-1),
        }
    ).with_columns(pl.col("dt").cast(pl.Date))


def _split(panel: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    origin = last_history_day(panel)
    return panel.filter(pl.col("dt") <= origin), panel.filter(pl.col("is_future"))


class _RecentHistory(Forecaster):
    """A baseline whose state is a statistic of recent history, read at predict time."""

    def _fit_core(self, panel: pl.DataFrame) -> None:
        return None

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
        """A baseline has nothing to learn from windows: its forecast is a statistic of the
        history it is given at predict time. So an update refits it on the history through
        ``through`` (free: no work), and the windows, config and probes are not read."""
        self._fit_core(panel.filter((pl.col("dt") <= through) & ~pl.col("is_future")))
        return no_work()


class SeasonalNaive(_RecentHistory):
    """Each forecast day repeats the same weekday of the last observed week."""

    name = "seasonal_naive"

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        hist, fut = _split(panel)
        series, _, y = panel_matrix(hist.select("series_id", "dt", "y"), "y")
        _, fdays, _ = panel_matrix(fut.select("series_id", "dt", pl.lit(0.0).alias("y")), "y")
        last = np.nan_to_num(y[:, -7:])
        origin = last_history_day(panel)
        # Day origin+h repeats origin+h-7, i.e. column (h-1) of the last 7 days.
        cols = [((d - origin).days - 1) % 7 for d in fdays]
        return _future_frame(series, fdays, last[:, cols]).join(
            fut.select("series_id", "dt"), on=["series_id", "dt"]
        )


class MovingAverage(_RecentHistory):
    """The mean of the last ``window`` observed days, flat over the horizon."""

    name = "moving_average"

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        hist, fut = _split(panel)
        level = (
            hist.sort("series_id", "dt")
            .group_by("series_id")
            .agg(pl.col("y").tail(self.config.window).mean().fill_null(0.0).alias("yhat"))
        )
        return (
            fut.select("series_id", "dt")
            .join(level, on="series_id", how="left")
            .with_columns(pl.col("yhat").fill_null(0.0))
        )


class SSA(_RecentHistory):
    """The published FreshRetailNet-50K SSA baseline ("similar scenario average").

    A forecast day is a softmax-weighted average of all history days, where a history day
    weighs more when it is recent, has the same weekday class (holidays form their own
    class, non-holiday weekends join class 0, as in the published code), the same rain
    state (precpt > 3.5) and a similar discount. Each history value is rescaled by the
    cross-series median ratio between the two weekday classes.
    """

    name = "ssa"

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        hist, fut = _split(panel)
        series, hdays, y = panel_matrix(hist, "y")
        _, fdays, fdisc = panel_matrix(fut, "discount")
        _, _, hdisc = panel_matrix(hist, "discount")
        hcls, hrain = _day_classes(hist, series, hdays)
        fcls, frain = _day_classes(fut, series, fdays)
        y = np.where(np.isnan(y), np.nanmean(y, axis=1, keepdims=True), y)
        y = np.nan_to_num(y)
        # Cross-series median ratio of the weekday-class means (published: + 0.001).
        onehot = hcls[..., None] == np.arange(6)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.nanmean(np.where(onehot, y[..., None], np.nan), axis=1) + 0.001
            season = np.nanmedian(means[:, :, None] / means[:, None, :], axis=0)
        season = np.nan_to_num(season, nan=1.0)
        time_idx = np.arange(len(hdays), dtype=float)
        out = np.zeros((len(series), len(fdays)))
        step = self.config.chunk_series
        for s0 in range(0, len(series), step):
            sl = slice(s0, s0 + step)
            out[sl] = _ssa_chunk(
                y[sl],
                hcls[sl],
                hrain[sl],
                np.nan_to_num(hdisc[sl], nan=1.0),
                fcls[sl],
                frain[sl],
                np.nan_to_num(fdisc[sl], nan=1.0),
                time_idx,
                season,
            )
        return _future_frame(series, fdays, out).join(
            fut.select("series_id", "dt"), on=["series_id", "dt"]
        )


def _day_classes(
    frame: pl.DataFrame, series: np.ndarray, days: list[date]
) -> tuple[np.ndarray, np.ndarray]:
    """Weekday class (0..5, published mapping) and rain flag as (series, day) int matrices."""
    cls = frame.select(
        "series_id",
        "dt",
        pl.when(pl.col("holiday_flag") == 1)
        .then(5)
        .when(pl.col("dt").dt.weekday() >= 6)
        .then(0)
        .otherwise(pl.col("dt").dt.weekday() - 1)
        .cast(pl.Float64)
        .alias("cls"),
        (pl.col("precpt") > 3.5).cast(pl.Float64).alias("rain"),
    )
    _, _, c = panel_matrix(cls, "cls")
    _, _, r = panel_matrix(cls, "rain")
    return np.nan_to_num(c).astype(int), np.nan_to_num(r).astype(int)


def _ssa_chunk(
    y: np.ndarray,
    hcls: np.ndarray,
    hrain: np.ndarray,
    hdisc: np.ndarray,
    fcls: np.ndarray,
    frain: np.ndarray,
    fdisc: np.ndarray,
    time_idx: np.ndarray,
    season: np.ndarray,
) -> np.ndarray:
    """The published weighting for one chunk of series: returns (series, forecast days)."""
    dist = np.broadcast_to(18 - time_idx / 5, (y.shape[0], fcls.shape[1], len(time_idx))).copy()
    disc_sim = 1 - np.abs(fdisc[:, :, None] - hdisc[:, None, :])
    dec, enc = fcls[:, :, None], hcls[:, None, :]
    dec_h, enc_h = (dec == 5), (enc == 5)
    dist = np.where(dec_h.astype(int) - enc_h.astype(int) == 0, dist - 3, dist)
    dist = np.where(~dec_h & enc_h, dist + 3, dist)
    dist = np.where(dec == enc, dist - 3, dist)
    drain, erain = frain[:, :, None], hrain[:, None, :]
    dist = np.where((drain == erain) & (drain == 1), dist - 3, dist)
    dist = np.where(drain != erain, dist + 3, dist)
    dist = np.clip(dist, 1, 18)
    logits = (18 - dist) * disc_sim**2
    logits -= logits.max(axis=-1, keepdims=True)  # stable softmax; same weights as published
    w = np.exp(logits)
    w /= w.sum(axis=-1, keepdims=True)
    ratio = season[fcls[:, :, None], hcls[:, None, :]]
    out: FloatArray = np.einsum("sfd,sd->sf", w * ratio, y)
    return out
