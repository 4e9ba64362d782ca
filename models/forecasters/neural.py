"""A TiDE-style MLP encoder-decoder in PyTorch Lightning, global over all series.

Inputs per (series, origin): the last ``lookback`` days of ``y`` and of the stockout rate
(past only), known-future covariates and calendar for lookback + 7 days (projected per day
by a shared linear layer, as in TiDE), and static embeddings of the hierarchy ids. Targets
are scaled by the series' lookback mean. The head emits, for each of the 7 days, a mean
(the point forecast, volume-weighted ``point_loss``, MAE by default) and P10/P50/P90 (pinball loss).

The net, its loss and its batches are :mod:`models.forecasters.neural_net`; the continual
fine-tune is :mod:`models.forecasters.neural_update`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from models.constants import HORIZON
from models.forecasters.base import Forecaster
from models.forecasters.neural_net import (
    KNOWN,
    LEVEL_WINDOWS,
    STATIC,
    FloatArray,
    IntArray,
    RandomBatches,
    TrainModule,
    WindowArrays,
)

# Pickled forecasters name their nets' classes as ``models.forecasters.neural.TiDENet`` and
# ``models.forecasters.neural._Residual`` (where they were defined before neural_net.py):
# importing them here keeps those models loadable.
from models.forecasters.neural_net import TiDENet as TiDENet
from models.forecasters.neural_net import _Residual as _Residual
from models.forecasters.neural_update import fine_tune
from models.forecasters.panel import first_day, last_history_day
from models.forecasters.update import NEURAL_REFRESH, Probe, UpdateConfig
from models.training import cpu_trainer


@dataclass(frozen=True)
class NeuralConfig:
    """Network and training options."""

    lookback: int = 28
    hidden: int = 256
    decoder_dim: int = 16
    proj_dim: int = 4
    dropout: float = 0.1
    epochs: int = 5
    samples_per_epoch: int = 400_000
    batch_size: int = 2048
    learning_rate: float = 2e-3
    num_threads: int = 2
    seed: int = 0
    debias: bool = False
    # MAE, not MSE: the metric is absolute error, and on 10k real series the MAE point head
    # scored 0.690 against 0.673 (README, stage 2).
    point_loss: str = "mae"
    # Nets trained with seeds seed, seed+1, ..., their forecasts averaged; each costs one
    # training run. One net's output level swings with its seed: on 10k real series seeds
    # 0-3 scored 0.692/0.695/0.678/0.692 (clean-day wpe -0.05..+0.06; SSA 0.690). Averaging
    # two lifts the mean over all six seed pairs to 0.693, though pair 2+3 scored 0.688. On
    # all 50k series nets=2 scored 0.696 (nets alone 0.688 and 0.696; SSA 0.691). Continual
    # refresh fine-tunes every net.
    nets: int = 2


class NeuralForecaster(Forecaster):
    """TiDE-style global model.

    Fitted: ``net_`` and ``extra_nets_`` (see ``NeuralConfig.nets``; :meth:`nets` gives
    them all), ``vocab_``, ``known_mean_``/``known_std_``; ``level_``, a factor on every
    head's output (1 after a fit; a continual refresh resets it, see :meth:`in_sample_level`),
    and ``fit_level_``, the fit's in-sample level.
    """

    name = "neural"

    config: NeuralConfig
    net_: TiDENet
    extra_nets_: list[TiDENet]
    vocab_: dict[str, dict[int, int]]
    known_mean_: FloatArray
    known_std_: FloatArray
    # Class defaults serve models pickled before the attribute existed.
    level_: float = 1.0
    fit_level_: float

    def _feature_names(self, panel: pl.DataFrame) -> list[str]:
        return ["y", "stock_hour6_22_cnt", *KNOWN, "dow", *STATIC]

    def arrays(
        self, panel: pl.DataFrame, start: date, days: int
    ) -> tuple[npt.NDArray[np.int64], WindowArrays]:
        """The sorted series ids of ``panel`` and its dense arrays over ``days`` days from
        ``start`` (day 0), with the fit's covariate scaling and hierarchy vocabulary."""
        grid = panel.select(
            "series_id",
            ((pl.col("dt") - pl.lit(start)).dt.total_days()).cast(pl.Int64).alias("d"),
            pl.col("y").cast(pl.Float64),
            (pl.col("stock_hour6_22_cnt").cast(pl.Float64) / 16).alias("so"),
            *(pl.col(k).cast(pl.Float64) for k in KNOWN),
            pl.col("dt").dt.weekday().alias("dow"),
            *STATIC,
        ).filter((pl.col("d") >= 0) & (pl.col("d") < days))
        series = np.sort(grid["series_id"].unique().to_numpy())
        si = np.searchsorted(series, grid["series_id"].to_numpy())
        d = grid["d"].to_numpy()
        n = len(series)
        y = np.full((n, days), np.nan)
        so = np.zeros((n, days))
        y[si, d] = grid["y"].to_numpy()
        so[si, d] = np.nan_to_num(grid["so"].to_numpy())
        kn = (grid.select(KNOWN).to_numpy() - self.known_mean_) / self.known_std_
        dow = np.eye(7)[grid["dow"].to_numpy() - 1]
        known = np.zeros((n, days, len(KNOWN) + 7))
        known[si, d] = np.nan_to_num(np.concatenate([kn, dow], axis=1))
        # Days with no row (padding before a short history) take the day's calendar anyway.
        first = (
            grid.group_by("series_id").agg([pl.col(c).first() for c in STATIC]).sort("series_id")
        )
        static = np.stack(
            [np.array([self.vocab_[c].get(int(v), 0) for v in first[c].to_list()]) for c in STATIC],
            axis=1,
        )
        return series, WindowArrays(y, so, known, static)

    def _fit_core(self, panel: pl.DataFrame) -> None:
        c = self.config
        torch.set_num_threads(c.num_threads)
        hist = panel.filter(~pl.col("is_future"))
        kn = hist.select(KNOWN).to_numpy().astype(float)
        self.known_mean_ = np.nanmean(kn, axis=0)
        self.known_std_ = np.nanstd(kn, axis=0) + 1e-6
        self.vocab_ = {
            col: {int(v): i + 1 for i, v in enumerate(hist[col].unique().sort().to_list())}
            for col in STATIC
        }
        start = first_day(hist)
        days = (last_history_day(hist) - start).days + 1
        # Left-pad so the first origins have a full lookback of (empty) history.
        pad_start = start - timedelta(days=c.lookback)
        _, arrays = self.arrays(hist, pad_start, days + c.lookback)
        # Origin o is the index of the first target day in the padded arrays. Prefer origins
        # with a full real lookback: padded lookbacks scale by ~0 and blow up the targets.
        last_origin = c.lookback + days - HORIZON
        if last_origin < c.lookback:
            raise ValueError(f"need at least {HORIZON} history days to train, got {days}")
        first_origin = min(2 * c.lookback, last_origin)
        # ``net_`` is the first net, ``extra_nets_`` the rest.
        nets = []
        for i in range(c.nets):
            torch.manual_seed(c.seed + i)
            net = self.new_net()
            loader = torch.utils.data.DataLoader(
                RandomBatches(arrays, (first_origin, last_origin + 1), c, c.seed + i),
                batch_size=None,
            )
            cpu_trainer(max_epochs=c.epochs).fit(
                TrainModule(net, c.learning_rate, c.point_loss), loader
            )
            nets.append(net.eval())
        self.net_, self.extra_nets_ = nets[0], nets[1:]
        self.level_ = 1.0
        # Where the fit left the forecast level, on windows drawn as the fit drew them and
        # kept as a refresh keeps them (an observed lookback day), so the two compare.
        rng = np.random.default_rng([c.seed, 1])
        k = min(LEVEL_WINDOWS, c.samples_per_epoch)
        s = rng.integers(0, arrays.y.shape[0], k)
        o = rng.integers(first_origin, last_origin + 1, k)
        ok = arrays.observed_lookback(s, o, c.lookback)
        self.fit_level_ = self.in_sample_level(arrays, s[ok], o[ok])

    def new_net(self) -> TiDENet:
        """An untrained net shaped for this model's config and fitted vocabulary (its initial
        weights are drawn from torch's global generator: seed it first)."""
        return TiDENet(self.config, len(KNOWN) + 7, [len(self.vocab_[s]) for s in STATIC])

    def nets(self) -> list[TiDENet]:
        """The model's nets: ``net_`` first, then ``extra_nets_`` (none in older pickles)."""
        return [self.net_, *getattr(self, "extra_nets_", [])]

    def set_nets(self, nets: list[TiDENet]) -> None:
        """Replace the model's nets (the first becomes ``net_``)."""
        self.net_, self.extra_nets_ = nets[0], nets[1:]

    def forecast_windows(self, arrays: WindowArrays, s: IntArray, o: IntArray) -> FloatArray:
        """(windows, 7, 4) served outputs (mean, P10, P50, P90) at origins ``o`` of series
        rows ``s``: each net clipped at 0, averaged, times ``level_``."""
        c = self.config
        nets = self.nets()
        outs = [np.zeros((0, HORIZON, 4))]
        with torch.no_grad():
            for b0 in range(0, len(s), 8192):
                y, so, known, static, scale = arrays.window(
                    s[b0 : b0 + 8192], o[b0 : b0 + 8192], c.lookback, with_target=False
                )
                per_net = [
                    np.maximum((net(y, so, known, static) * scale[:, None, None]).numpy(), 0.0)
                    for net in nets
                ]
                outs.append(np.mean(per_net, axis=0))
        served: FloatArray = np.concatenate(outs) * self.level_
        return served

    def in_sample_level(self, arrays: WindowArrays, s: IntArray, o: IntArray) -> float:
        """Σ point forecast / Σ actual over the observed target days of windows (s, o).

        On windows the model trained on this is ~1 after a full fit (1.0007 on 50k real
        series). Fine-tuning with the MAE point loss keeps pulling the point head toward the
        median, below the mean for skewed demand: on 50k real series one refresh lowered it
        to 0.990 and the next week's forecast by 1.8 %, whichever windows it trained on
        (new + replay, or as many drawn from the full fit's own). The refresh therefore resets
        ``level_`` so the level on its windows is the fit's again.
        """
        y = arrays.y[s[:, None], o[:, None] + np.arange(HORIZON)]
        seen = np.isfinite(y)
        actual = y[seen].sum()
        if actual <= 0:  # no observed sales to compare with: the level is unknown
            return float("nan")
        pred = self.forecast_windows(arrays, s, o)[..., 0]
        return float(pred[seen].sum() / actual)

    def _predict_point(self, panel: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        torch.set_num_threads(c.num_threads)
        origin = last_history_day(panel)
        start = origin - timedelta(days=c.lookback - 1)
        series, arrays = self.arrays(panel, start, c.lookback + HORIZON)
        pred = self.forecast_windows(
            arrays, np.arange(len(series)), np.full(len(series), c.lookback)
        )
        days = np.array(
            [origin + timedelta(days=h) for h in range(1, HORIZON + 1)], dtype="datetime64[D]"
        )
        q = np.sort(pred[..., 1:], axis=2)
        frame = pl.DataFrame(
            {
                "series_id": np.repeat(series, HORIZON),
                "dt": np.tile(days, len(series)),
                "yhat": pred[..., 0].reshape(-1),
                "yhat_p10": q[..., 0].reshape(-1),
                "yhat_p50": q[..., 1].reshape(-1),
                "yhat_p90": q[..., 2].reshape(-1),
            }
        ).with_columns(pl.col("dt").cast(pl.Date))
        return frame.join(
            panel.filter(pl.col("is_future")).select("series_id", "dt"), on=["series_id", "dt"]
        )

    # -- continual learning (see models.forecasters.neural_update) --------------------------
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
        """Fine-tune every net on the windows (:data:`NEURAL_REFRESH` by default), then
        re-anchor ``level_``. ``replay_pool`` is not used."""
        cfg = config if config is not None else NEURAL_REFRESH
        hist = panel.filter(pl.col("dt") <= through)
        return fine_tune(self, hist, windows, cfg, probes, scratch=False)

    def _fit_windows_core(
        self, panel: pl.DataFrame, windows: pl.DataFrame, *, through: date, seed: int
    ) -> dict[str, Any]:
        """Fresh nets trained on the windows with the full fit's recipe (:meth:`full_recipe`)."""
        hist = panel.filter(pl.col("dt") <= through)
        return fine_tune(self, hist, windows, self.full_recipe(seed=seed), [], scratch=True)

    def full_recipe(self, *, seed: int = 0, **overrides: Any) -> UpdateConfig:
        """The full fit's epochs and learning rate as an update config (one pass over the
        given windows per epoch).

        A4 trains with it from scratch on the buffer; the protocol's warm-start arms on every
        window through t, from fresh or from the current weights (optionally after
        shrink-and-perturb), which is how the warm-start penalty is measured. A full fit sets
        its own level, so the recipe does not anchor it (``anchor_level`` off).
        """
        return UpdateConfig(
            anchor_level=overrides.pop("anchor_level", False),
            epochs=self.config.epochs,
            fine_tune_lr=self.config.learning_rate,
            seed=seed,
            batch_size=min(self.config.batch_size, 1024),
            **overrides,
        )
