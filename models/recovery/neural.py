"""``neural``: a masked MLP imputer over the 16 business hours, trained with Lightning.

Like the published baselines (SAITS, TimesNet), it is a masked imputer: it learns to
fill hours hidden by synthetic stockout masks from the hours that stay visible. Its
window is a series-day's 16 business hours with the previous and next day as context
(3 days x 16 hours, values and visibility masks), plus the profile estimate, weekday,
discount, holiday and activity flags. Values are divided by the series' usual hourly
level, so one small network serves series of every size.

Training is bounded for the CPU: a series subsample, two mask draws (uniform and
demand-dependent), and a fixed number of optimiser steps. Night hours (outside 6..21)
keep the profile estimate; stores sell little then.
"""

from __future__ import annotations

import logging
import warnings

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models.recovery.base import BUSINESS, N_BUSINESS, DayBlock, Recoverer, SeriesMemory
from models.recovery.masks import MaskSpec, sample_mask
from models.recovery.profile import ProfileParts, ProfileRecoverer
from models.training import cpu_trainer

_FLAGS = ("discount", "holiday_flag", "activity_flag")


def _neighbour_rows(block: DayBlock, rows: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index of the same series ``lag`` days earlier (lag > 0) or later, and validity."""
    idx = np.clip(rows - lag, 0, max(block.n - 1, 0))
    valid = (block.series_code[idx] == block.series_code[rows]) & (
        block.day[rows] - block.day[idx] == lag
    )
    return idx, valid


def window_features(block: DayBlock, parts: ProfileParts, rows: np.ndarray) -> np.ndarray:
    """The network input of days ``rows``: (len(rows), 7 * 16 + 7 + 4) float32.

    Only the given rows (and their neighbours) are touched, so it can run in chunks.
    """
    unit = np.maximum(parts.usual_level[rows], 1e-3) / N_BUSINESS  # usual demand per hour
    cols = []
    for lag in (0, 1, -1):
        # Neighbouring days are in this day's units; a missing neighbour is all unseen.
        idx, valid = _neighbour_rows(block, rows, lag) if lag else (rows, np.ones(len(rows), bool))
        seen = ~block.stockout[idx][:, BUSINESS] & valid[:, None]
        cols += [block.sale[idx][:, BUSINESS] * seen / unit[:, None], seen]
    cols.append(parts.estimate[rows][:, BUSINESS] / unit[:, None])
    weekday = np.eye(7)[block.weekday[rows]]
    flags = [np.nan_to_num(block.context.get(c, np.zeros(block.n))[rows]) for c in _FLAGS]
    cols += [weekday, np.column_stack([*flags, np.log(unit)])]
    return np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1)


class _Imputer(L.LightningModule):
    """MLP: window -> 16 non-negative hourly demands (in units of the usual hour)."""

    def __init__(self, n_in: int, hidden: int, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, N_BUSINESS),
            nn.Softplus(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, y, hidden = batch
        pred: torch.Tensor = self(x)
        # Loss only on hidden hours (the masked-imputation objective), plus the error of
        # the hidden day total, which is what daily demand and WAPE depend on.
        n = hidden.sum().clamp(min=1.0)
        hourly = (((pred - y) * hidden) ** 2).sum() / n
        total = ((((pred - y) * hidden).sum(dim=1)) ** 2).mean() / N_BUSINESS
        loss = hourly + total
        self.log("train/loss", loss, prog_bar=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


class NeuralRecoverer(Recoverer):
    """Masked-imputation MLP on business hours; the profile fills nights.

    Args:
        hidden: width of the two hidden layers.
        max_steps: optimiser steps (bounds CPU time).
        batch_size: training batch size.
        lr: AdamW learning rate.
        max_fit_series: series sampled for training.
        mask_rate: share of business hours hidden in the training masks.
        seed: sampling and initialisation seed.
    """

    name = "neural"

    def __init__(
        self,
        *,
        hidden: int = 128,
        max_steps: int = 800,
        batch_size: int = 512,
        lr: float = 2e-3,
        max_fit_series: int = 3_000,
        mask_rate: float = 0.3,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.max_fit_series = max_fit_series
        self.mask_rate = mask_rate
        self.seed = seed

    def _fit_block(self, block: DayBlock) -> None:
        self.profile_ = ProfileRecoverer(seed=self.seed).fit_block(block)
        rng = np.random.default_rng(self.seed)
        if block.n_series > self.max_fit_series:
            keep = rng.choice(block.n_series, self.max_fit_series, replace=False)
            block = block.take(np.flatnonzero(np.isin(block.series_code, keep)))
        xs, ys, hs = [], [], []
        for i, dependent in enumerate((False, True)):
            spec = MaskSpec(self.mask_rate, dependent, seed=self.seed + 211 * (i + 1))
            mask = sample_mask(block.sale, block.stockout, block.series_code, spec)
            masked = block.with_hours(np.where(mask, 0.0, block.sale), block.stockout | mask)
            parts = self.profile_.parts(masked)
            rows = np.flatnonzero(mask[:, BUSINESS].any(axis=1))
            unit = np.maximum(parts.usual_level[rows], 1e-3) / N_BUSINESS
            xs.append(window_features(masked, parts, rows))
            ys.append(block.sale[rows][:, BUSINESS] / unit[:, None])
            hs.append(mask[rows][:, BUSINESS])
        x = torch.from_numpy(np.vstack(xs))
        y = torch.from_numpy(np.vstack(ys).astype(np.float32))
        h = torch.from_numpy(np.vstack(hs).astype(np.float32))
        self.n_train_rows_ = len(x)
        torch.manual_seed(self.seed)
        self.module_: _Imputer | None = _Imputer(x.shape[1], self.hidden, self.lr)
        if len(x) < 2:
            self.module_ = None  # nothing to learn from: the profile estimate stands
            return
        loader = DataLoader(
            TensorDataset(x, y, h),
            batch_size=min(self.batch_size, len(x)),
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
        )
        # Lightning announces its hardware at INFO for every Trainer; keep job logs quiet.
        pl_log = logging.getLogger("lightning.pytorch")
        level = pl_log.level
        pl_log.setLevel(logging.WARNING)
        threads = torch.get_num_threads()
        # Tiny matmuls: one thread is ~30x faster than two on a shared 2-core box.
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                # Lightning's own internals warn about a torch pytree rename; not actionable.
                warnings.filterwarnings("ignore", message=".*treespec.*")
                trainer = cpu_trainer(
                    max_steps=self.max_steps,
                    max_epochs=-1,
                )
                trainer.fit(self.module_, loader)
        finally:
            pl_log.setLevel(level)
            torch.set_num_threads(threads)
        self.module_.eval()

    def _estimate_block(
        self, block: DayBlock, memory: SeriesMemory | None
    ) -> tuple[np.ndarray, SeriesMemory]:
        parts = self.profile_.parts(block, memory)
        estimate = parts.estimate
        if self.module_ is None:
            return estimate, parts.memory
        rows = np.flatnonzero(block.stockout[:, BUSINESS].any(axis=1))
        unit = np.maximum(parts.usual_level, 1e-3) / N_BUSINESS
        chunk = 200_000  # bounds the float32 feature matrix to ~100 MB
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with torch.inference_mode():
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                x = torch.from_numpy(window_features(block, parts, part))
                pred = self.module_(x).numpy().astype(np.float64) * unit[part][:, None]
                estimate[part, BUSINESS] = pred
        torch.set_num_threads(threads)
        return estimate, parts.memory
