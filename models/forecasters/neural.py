"""A TiDE-style MLP encoder-decoder in PyTorch Lightning, global over all series.

Inputs per (series, origin): the last ``lookback`` days of ``y`` and of the stockout rate
(past only), known-future covariates and calendar for lookback + 7 days (projected per day
by a shared linear layer, as in TiDE), and static embeddings of the hierarchy ids. Targets
are scaled by the series' lookback mean. The head emits, for each of the 7 days, a mean
(the point forecast, volume-weighted ``point_loss``, MAE by default) and P10/P50/P90 (pinball loss).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn

from models.constants import COVARIATE_COLUMNS, HIERARCHY_COLUMNS
from models.forecasters.base import HORIZON, Forecaster, last_history_day
from models.training import cpu_trainer

STATIC = HIERARCHY_COLUMNS
KNOWN = COVARIATE_COLUMNS
QS = (0.1, 0.5, 0.9)
# Windows that measure a fit's in-sample level (~1 s on 2 cores).
LEVEL_WINDOWS = 32_768


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


class _Residual(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out), nn.Dropout(dropout)
        )
        self.skip = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(x) + self.skip(x))


class TiDENet(nn.Module):
    """Dense encoder-decoder with a per-day temporal decoder and a linear lookback skip."""

    def __init__(self, cfg: NeuralConfig, n_known: int, vocab_sizes: list[int]) -> None:
        super().__init__()
        lb, h = cfg.lookback, HORIZON
        dims = [16 if n > 50 else 4 for n in vocab_sizes]
        self.embs = nn.ModuleList(
            [nn.Embedding(n + 1, d) for n, d in zip(vocab_sizes, dims, strict=True)]
        )
        emb_dim = sum(dims)
        self.proj = nn.Linear(n_known, cfg.proj_dim)
        d_in = 2 * lb + (lb + h) * cfg.proj_dim + emb_dim
        self.encoder = nn.Sequential(
            _Residual(d_in, cfg.hidden, cfg.hidden, cfg.dropout),
            _Residual(cfg.hidden, cfg.hidden, cfg.hidden, cfg.dropout),
        )
        self.decoder = _Residual(cfg.hidden, cfg.hidden, h * cfg.decoder_dim, cfg.dropout)
        self.temporal = _Residual(cfg.decoder_dim + cfg.proj_dim, 64, 4, 0.0)
        self.skip = nn.Linear(lb, h * 4)
        self.h, self.dd = h, cfg.decoder_dim

    def forward(
        self, y: torch.Tensor, so: torch.Tensor, known: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        """Returns (batch, 7, 4): mean, P10, P50, P90 in scaled units."""
        b = y.shape[0]
        kp = self.proj(known)  # (b, lb+h, p)
        emb = torch.cat([e(static[:, i]) for i, e in enumerate(self.embs)], dim=1)
        z = self.encoder(torch.cat([y, so, kp.reshape(b, -1), emb], dim=1))
        dec = self.decoder(z).reshape(b, self.h, self.dd)
        out = self.temporal(torch.cat([dec, kp[:, -self.h :]], dim=2))
        return out + self.skip(y).reshape(b, self.h, 4)


def weighted_loss(
    out: torch.Tensor, target: torch.Tensor, w: torch.Tensor, point_loss: str
) -> torch.Tensor:
    """The point head's MAE or MSE plus each quantile head's pinball loss, each a mean over
    windows and horizon with window weights ``w`` (scaled units)."""
    err = out[..., 0] - target
    point = err.abs() if point_loss == "mae" else err**2
    mse = (point * w[:, None]).mean()
    pin = torch.zeros(())
    for i, q in enumerate(QS):
        d = target - out[..., i + 1]
        pin = pin + (torch.maximum(q * d, (q - 1) * d) * w[:, None]).mean()
    return mse + pin


class _Module(L.LightningModule):
    def __init__(self, net: TiDENet, lr: float, point_loss: str) -> None:
        super().__init__()
        self.net, self.lr, self.point_loss = net, lr, point_loss

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        y, so, known, static, target, scale = batch
        out = self.net(y, so, known, static)
        w = scale / scale.mean()  # volume weighting, like the metric's Σ|ŷ-y|
        loss = weighted_loss(out, target, w, self.point_loss)
        self.log("train/loss", loss, prog_bar=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


class _Batches(torch.utils.data.IterableDataset):
    """Random (series, origin) windows, gathered with numpy fancy indexing per batch."""

    def __init__(
        self, arrays: _Arrays, origins: tuple[int, int], cfg: NeuralConfig, epoch_seed: int
    ) -> None:
        self.a, self.origins, self.cfg, self.seed = arrays, origins, cfg, epoch_seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        rng = np.random.default_rng(self.seed)
        self.seed += 1
        c = self.cfg
        for _ in range(max(1, c.samples_per_epoch // c.batch_size)):
            s = rng.integers(0, self.a.y.shape[0], c.batch_size)
            o = rng.integers(self.origins[0], self.origins[1], c.batch_size)
            yield self.a.window(s, o, c.lookback, with_target=True)


class _Arrays:
    """Dense (series, day) arrays built from the panel; day 0 is the panel's first day."""

    def __init__(
        self, y: np.ndarray, so: np.ndarray, known: np.ndarray, static: np.ndarray
    ) -> None:
        self.y, self.so, self.known, self.static = y, so, known, static

    def observed_lookback(self, s: np.ndarray, o: np.ndarray, lb: int) -> np.ndarray:
        """Whether each window has an observed day in its lookback (its scale is a mean of
        those; with none it is ~0.1 and the window's forecast means nothing)."""
        return np.isfinite(self.y[s[:, None], o[:, None] + np.arange(-lb, 0)]).any(axis=1)

    def window(
        self, s: np.ndarray, o: np.ndarray, lb: int, *, with_target: bool
    ) -> tuple[torch.Tensor, ...]:
        past = o[:, None] + np.arange(-lb, 0)
        full = o[:, None] + np.arange(-lb, HORIZON)
        y = self.y[s[:, None], past]
        seen = ~np.isnan(y)
        # Series mean over the lookback's observed days (0 when none: a brand-new series).
        scale = np.nan_to_num(y).sum(axis=1) / np.maximum(seen.sum(axis=1), 1) + 0.1
        t = lambda a: torch.as_tensor(np.nan_to_num(a), dtype=torch.float32)  # noqa: E731
        out = [
            t(y / scale[:, None]),
            t(self.so[s[:, None], past]),
            t(self.known[s[:, None], full]),
            torch.as_tensor(self.static[s], dtype=torch.long),
        ]
        if with_target:
            fut = o[:, None] + np.arange(HORIZON)
            out.append(t(self.y[s[:, None], fut] / scale[:, None]))
        out.append(t(scale))
        return tuple(out)


class NeuralForecaster(Forecaster):
    """TiDE-style global model.

    Fitted: ``net_`` and ``extra_nets_`` (see ``NeuralConfig.nets``), ``vocab_``,
    ``known_mean_``/``known_std_``; ``level_``, a factor on every head's output (1 after a
    fit; a continual refresh resets it, see :meth:`in_sample_level`), and ``fit_level_``,
    the fit's in-sample level.
    """

    name = "neural"

    def _feature_names(self, panel: pl.DataFrame) -> list[str]:
        return ["y", "stock_hour6_22_cnt", *KNOWN, "dow", *STATIC]

    def _arrays(self, panel: pl.DataFrame, start: date, days: int) -> tuple[np.ndarray, _Arrays]:
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
        return series, _Arrays(y, so, known, static)

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
        start: date = hist["dt"].min()  # type: ignore[assignment]
        days = (last_history_day(hist) - start).days + 1
        # Left-pad so the first origins have a full lookback of (empty) history.
        pad_start = start - timedelta(days=c.lookback)
        _, arrays = self._arrays(hist, pad_start, days + c.lookback)
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
            net = TiDENet(c, len(KNOWN) + 7, [len(self.vocab_[s]) for s in STATIC])
            loader = torch.utils.data.DataLoader(
                _Batches(arrays, (first_origin, last_origin + 1), c, c.seed + i), batch_size=None
            )
            cpu_trainer(max_epochs=c.epochs).fit(
                _Module(net, c.learning_rate, c.point_loss), loader
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

    def forecast_windows(self, arrays: _Arrays, s: np.ndarray, o: np.ndarray) -> np.ndarray:
        """(windows, 7, 4) served outputs (mean, P10, P50, P90) at origins ``o`` of series
        rows ``s``: each net clipped at 0, averaged, times ``level_``."""
        c = self.config
        nets = [self.net_, *getattr(self, "extra_nets_", [])]  # old pickles have one net
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
        return np.concatenate(outs) * getattr(self, "level_", 1.0)

    def in_sample_level(self, arrays: _Arrays, s: np.ndarray, o: np.ndarray) -> float:
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
        series, arrays = self._arrays(panel, start, c.lookback + HORIZON)
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
