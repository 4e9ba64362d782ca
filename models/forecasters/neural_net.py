"""The neural forecaster's network and training pieces: the TiDE-style net, its loss, the
Lightning module, the dense window arrays and the random batches of a full fit.

:mod:`models.forecasters.neural` builds and serves them; :mod:`models.forecasters.neural_update`
fine-tunes them. Neither the net nor the arrays know the forecaster: they read the few
options they need through :class:`NetConfig`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.constants import COVARIATE_COLUMNS, HIERARCHY_COLUMNS, HORIZON, QUANTILES

STATIC = HIERARCHY_COLUMNS
KNOWN = COVARIATE_COLUMNS
# Windows that measure a fit's in-sample level (~1 s on 2 cores).
LEVEL_WINDOWS = 32_768

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Batch = tuple[torch.Tensor, ...]


class NetConfig(Protocol):
    """The options of ``NeuralConfig`` the net and the full fit's batches read."""

    @property
    def lookback(self) -> int: ...

    @property
    def hidden(self) -> int: ...

    @property
    def decoder_dim(self) -> int: ...

    @property
    def proj_dim(self) -> int: ...

    @property
    def dropout(self) -> float: ...

    @property
    def samples_per_epoch(self) -> int: ...

    @property
    def batch_size(self) -> int: ...


class _Residual(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out), nn.Dropout(dropout)
        )
        self.skip = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.norm(self.mlp(x) + self.skip(x))
        return out


class TiDENet(nn.Module):
    """Dense encoder-decoder with a per-day temporal decoder and a linear lookback skip."""

    def __init__(self, cfg: NetConfig, n_known: int, vocab_sizes: list[int]) -> None:
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
        out: torch.Tensor = self.temporal(torch.cat([dec, kp[:, -self.h :]], dim=2))
        skip: torch.Tensor = self.skip(y).reshape(b, self.h, 4)
        return out + skip


def weighted_loss(
    out: torch.Tensor, target: torch.Tensor, w: torch.Tensor, point_loss: str
) -> torch.Tensor:
    """The point head's MAE or MSE plus each quantile head's pinball loss, each a mean over
    windows and horizon with window weights ``w`` (scaled units)."""
    err = out[..., 0] - target
    point = err.abs() if point_loss == "mae" else err**2
    mse = (point * w[:, None]).mean()
    pin = torch.zeros(())
    for i, q in enumerate(QUANTILES):
        d = target - out[..., i + 1]
        pin = pin + (torch.maximum(q * d, (q - 1) * d) * w[:, None]).mean()
    return mse + pin


class TrainModule(L.LightningModule):
    """One net trained on (inputs, target, scale) batches with :func:`weighted_loss`."""

    def __init__(self, net: TiDENet, lr: float, point_loss: str) -> None:
        super().__init__()
        self.net, self.lr, self.point_loss = net, lr, point_loss

    def training_step(self, batch: Batch, _: int) -> torch.Tensor:
        y, so, known, static, target, scale = batch
        out = self.net(y, so, known, static)
        w = scale / scale.mean()  # volume weighting, like the metric's Σ|ŷ-y|
        loss = weighted_loss(out, target, w, self.point_loss)
        self.log("train/loss", loss, prog_bar=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


class WindowArrays:
    """Dense (series, day) arrays built from the panel; day 0 is the panel's first day.

    ``y`` (NaN where unobserved), ``so`` (stockout share), ``known`` (standardised
    covariates and weekday one-hot per day) and ``static`` (hierarchy vocabulary indices).
    """

    def __init__(self, y: FloatArray, so: FloatArray, known: FloatArray, static: IntArray) -> None:
        self.y, self.so, self.known, self.static = y, so, known, static

    def observed_lookback(self, s: IntArray, o: IntArray, lb: int) -> npt.NDArray[np.bool_]:
        """Whether each window has an observed day in its lookback (its scale is a mean of
        those; with none it is ~0.1 and the window's forecast means nothing)."""
        seen: npt.NDArray[np.bool_] = np.isfinite(
            self.y[s[:, None], o[:, None] + np.arange(-lb, 0)]
        ).any(axis=1)
        return seen

    def window(self, s: IntArray, o: IntArray, lb: int, *, with_target: bool) -> Batch:
        """The net's inputs for windows (series row ``s``, first target day ``o``), then the
        scaled target (``with_target``) and the scale: the lookback's observed-day mean."""
        past = o[:, None] + np.arange(-lb, 0)
        full = o[:, None] + np.arange(-lb, HORIZON)
        y = self.y[s[:, None], past]
        seen = ~np.isnan(y)
        # Series mean over the lookback's observed days (0 when none: a brand-new series).
        scale = np.nan_to_num(y).sum(axis=1) / np.maximum(seen.sum(axis=1), 1) + 0.1

        def t(a: npt.NDArray[Any]) -> torch.Tensor:
            return torch.as_tensor(np.nan_to_num(a), dtype=torch.float32)

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


class RandomBatches(torch.utils.data.IterableDataset[Batch]):
    """A full fit's epoch: random (series, origin) windows, gathered with numpy fancy
    indexing per batch; each epoch draws with the next seed."""

    def __init__(
        self, arrays: WindowArrays, origins: tuple[int, int], cfg: NetConfig, epoch_seed: int
    ) -> None:
        self.a, self.origins, self.cfg, self.seed = arrays, origins, cfg, epoch_seed

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed)
        self.seed += 1
        c = self.cfg
        for _ in range(max(1, c.samples_per_epoch // c.batch_size)):
            s = rng.integers(0, self.a.y.shape[0], c.batch_size)
            o = rng.integers(self.origins[0], self.origins[1], c.batch_size)
            yield self.a.window(s, o, c.lookback, with_target=True)
