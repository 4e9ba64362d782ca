"""``profile``: a fast, non-learned recovery baseline (intraday shape x day level).

Model: demand[d, h] = level[d] * share[series, daytype, h], with daytype weekday/weekend.

* ``share`` is estimated from in-stock hours only, with the multiplicative (Poisson)
  ratio estimator sum(sales) / sum(level of the days the hour was observed). Dividing
  by the levels of the observing days, instead of averaging sales, corrects most of the
  censoring bias: late hours stay in stock mainly on low-demand days, so a plain mean
  would under-state them.
* A series' share is shrunk towards its product's share pooled over stores (and that
  towards the global share), so thin or stockout-heavy histories borrow strength.
* ``level`` is the day's in-stock sales divided by the share of the day those hours
  cover, shrunk towards the series' usual level for that daytype; a day with no
  in-stock hour gets the usual level.

Group sums use ``np.add.reduceat`` over each series' contiguous rows and float32
intermediates: on the full split (4.5 M days x 24 hours) this is memory-bound, and
these halve the traffic of a bincount over 108 M hourly indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.recovery.base import BUSINESS, HOURS, N_BUSINESS, DayBlock, Recoverer, SeriesMemory


@dataclass(frozen=True)
class ProfileParts:
    """Per-day pieces of the profile estimate, reused as features by learned methods.

    Attributes:
        estimate: (n, 24) level * share.
        share: (n, 24) float32, the day's intraday shape (rows sum to 1).
        level: (n,) the day's estimated total demand.
        usual_level: (n,) the series' usual level for this daytype.
        seen_share: (n,) share of the day's shape covered by in-stock hours.
        out_rate: (n,) the series' share of business hours out of stock, over its days.
        memory: the per-series statistics behind these pieces.
    """

    estimate: np.ndarray
    share: np.ndarray
    level: np.ndarray
    usual_level: np.ndarray
    seen_share: np.ndarray
    out_rate: np.ndarray
    memory: SeriesMemory


def _normalise(share: np.ndarray) -> np.ndarray:
    total = share.sum(axis=-1, keepdims=True)
    flat = np.full_like(share, 1.0 / share.shape[-1])
    return np.where(total > 0, share / np.where(total > 0, total, 1.0), flat)


def _gather(share: np.ndarray, row_index: np.ndarray, out: np.ndarray) -> None:
    """out[i] = share[series, daytype] of day i, with row_index = series * 2 + daytype."""
    np.take(share.astype(np.float32).reshape(-1, HOURS), row_index, axis=0, out=out)


class _Block:
    """Arrays of a block that every iteration reuses (float32, computed once)."""

    def __init__(self, block: DayBlock) -> None:
        self.code = block.series_code
        self.n_series = block.n_series
        self.daytype = (block.weekday >= 5).astype(np.int64)
        self.masks = [(self.daytype == t).astype(np.float32) for t in (0, 1)]
        self.starts = np.r_[0, np.flatnonzero(np.diff(self.code)) + 1]
        self.observed = (~block.stockout).astype(np.float32)
        # float32 from the start: (n, 24) passes are memory-bound on the full split.
        seen = np.where(block.stockout, np.float32(0), block.sale.astype(np.float32))
        self.seen_sales = seen.sum(axis=1, dtype=np.float64)
        self.num = self.series_sum(seen, self.masks)
        self.days = np.stack(
            [np.add.reduceat(m, self.starts) for m in self.masks], axis=1
        )  # (n_series, 2)

    def series_sum(self, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
        """(n_series, 2, 24): sums of x * weight[daytype] over each series' rows."""
        lengths = np.diff(np.r_[self.starts, len(x)])
        if len(lengths) and (lengths == lengths[0]).all():
            # Equal-length series (the usual panel): one batched matmul, no temporaries.
            d = int(lengths[0])
            w = np.stack(weights, axis=1).astype(np.float32).reshape(-1, d, 2).transpose(0, 2, 1)
            batched: np.ndarray = np.matmul(w, x.reshape(-1, d, HOURS)).astype(np.float64)
            return batched
        stacked: np.ndarray = np.stack(
            [np.add.reduceat(x * w[:, None], self.starts, axis=0) for w in weights], axis=1
        ).astype(np.float64)
        return stacked

    def seen_share(self, share_rows: np.ndarray) -> np.ndarray:
        share: np.ndarray = np.einsum("ij,ij->i", self.observed, share_rows, dtype=np.float64)
        return share


class ProfileRecoverer(Recoverer):
    """Shape x level imputation with hierarchical shrinkage.

    Args:
        shape_prior_days: pseudo-days of the pooled shape mixed into a series' shape.
        level_prior: pseudo-share of a day given to the series' usual level (1.0 = a
            fully observed day).
        iterations: alternations of the share / level ratio estimators.
        max_fit_series: series sampled to fit the pooled (product, global) shapes.
        seed: sampling seed.

    Reads context column ``product_id`` when present (pooling); otherwise pools globally.
    """

    name = "profile"
    context_days = 0  # a day's estimate reads no other day's rows

    def __init__(
        self,
        *,
        shape_prior_days: float = 4.0,
        level_prior: float = 0.3,
        iterations: int = 2,
        max_fit_series: int = 5_000,
        seed: int = 0,
    ) -> None:
        self.shape_prior_days = shape_prior_days
        self.level_prior = level_prior
        self.iterations = iterations
        self.max_fit_series = max_fit_series
        self.seed = seed

    # -- fitting: pooled shapes ----------------------------------------------------------
    def _fit_block(self, block: DayBlock) -> None:
        if block.n_series > self.max_fit_series:
            rng = np.random.default_rng(self.seed)
            keep = rng.choice(block.n_series, self.max_fit_series, replace=False)
            block = block.take(np.flatnonzero(np.isin(block.series_code, keep)))
        b = _Block(block)
        product = self._series_product(block)
        self.products_, pcode = np.unique(product, return_inverse=True)
        n_prod = len(self.products_)
        share = np.full((b.n_series, 2, HOURS), 1.0 / HOURS)
        for _ in range(max(self.iterations, 1)):
            share_rows = share.astype(np.float32)[b.code, b.daytype]
            level = self._levels(b, b.seen_share(share_rows), usual=None)
            den = b.series_sum(b.observed, [level.astype(np.float32) * m for m in b.masks])
            g_num, g_den = b.num.sum(axis=0), den.sum(axis=0)
            self.global_share_ = _normalise(g_num / np.maximum(g_den, 1e-9))
            p_num = np.zeros((n_prod, 2, HOURS))
            p_den = np.zeros((n_prod, 2, HOURS))
            np.add.at(p_num, pcode, b.num)
            np.add.at(p_den, pcode, den)
            k = self.shape_prior_days * max(g_den.sum() / max(b.days.sum(), 1.0), 1e-6)
            self.product_share_ = _normalise((p_num + k * self.global_share_) / (p_den + k))
            share = self.product_share_[pcode]

    @staticmethod
    def _series_product(block: DayBlock) -> np.ndarray:
        """Each series' product id (its first row's), or -1 without that context."""
        starts = np.r_[0, np.flatnonzero(np.diff(block.series_code)) + 1]
        prod = block.context.get("product_id")
        if prod is None:
            return np.full(len(starts), -1, dtype=np.int64)
        ids: np.ndarray = np.nan_to_num(prod[starts], nan=-1).astype(np.int64)
        return ids

    # -- estimation ----------------------------------------------------------------------
    def _estimate_block(
        self, block: DayBlock, memory: SeriesMemory | None
    ) -> tuple[np.ndarray, SeriesMemory]:
        parts = self.parts(block, memory)
        return parts.estimate, parts.memory

    def parts(self, block: DayBlock, memory: SeriesMemory | None = None) -> ProfileParts:
        """The estimate and its per-day pieces for every day of ``block``.

        With ``memory``, the series it knows keep its shape and usual level (estimated on
        their whole history) instead of ones estimated from this block's few days; a day's
        level still comes from its own in-stock sales. A day recovered this way gets what
        the recovery that made ``memory`` gave it, had that recovery seen the day.
        """
        b = _Block(block)
        # One (n, 24) buffer for every gather of the day shapes: on the full split each
        # fresh 430 MB array costs more in page faults than the gather itself.
        share_rows = np.empty((block.n, HOURS), dtype=np.float32)
        share, usual_table = self._series_estimates(block, b, share_rows)
        series_id = block.series_id[b.starts]
        known = np.zeros(b.n_series, dtype=bool)
        pos = np.zeros(b.n_series, dtype=np.int64)
        if memory is not None and memory.n:
            pos, known = memory.lookup(series_id)
            share = np.where(known[:, None, None], memory.share[pos], share)
            usual_table = np.where(known[:, None], memory.usual[pos], usual_table)
        _gather(share, b.code * 2 + b.daytype, share_rows)
        seen_share = b.seen_share(share_rows)
        usual = usual_table[b.code, b.daytype]
        level = self._levels(b, seen_share, usual=usual)
        # Stockout counts: a memory already holds its series' days up to ``through``.
        counted = np.ones(block.n, dtype=bool)
        if memory is not None:
            counted = (block.day > memory.through) | ~known[b.code]
        n_out = block.stockout[:, BUSINESS].sum(axis=1)
        out_hours = np.bincount(b.code, weights=n_out * counted, minlength=b.n_series)
        days = np.bincount(b.code, weights=counted, minlength=b.n_series).astype(np.int64)
        learned = SeriesMemory(
            series_id=series_id,
            share=share.astype(np.float32),
            usual=usual_table,
            out_hours=out_hours,
            days=days,
            through=int(block.day.max()) if block.n else SeriesMemory.empty().through,
        )
        if memory is not None:
            learned = _merge(memory, learned, pos, known)
            # The block's series, counted over their days before the block's too.
            out_hours, days = out_hours.copy(), days.copy()
            out_hours[known] += memory.out_hours[pos[known]]
            days[known] += memory.days[pos[known]]
        out_rate = out_hours / np.maximum(days, 1) / N_BUSINESS
        return ProfileParts(
            estimate=share_rows * level[:, None],
            share=share_rows,
            level=level,
            usual_level=usual,
            seen_share=seen_share,
            out_rate=out_rate[b.code],
            memory=learned,
        )

    def _series_estimates(
        self, block: DayBlock, b: _Block, share_rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each series' shape (n_series, 2, 24) and usual level (n_series, 2) from ``block``.

        Alternates the share and level ratio estimators; the usual level is the last
        iteration's, as the day levels use it. ``share_rows`` is an (n, 24) work buffer.
        """
        prior = self._series_prior(block)  # (n_series, 2, 24)
        share = prior
        usual: np.ndarray | None = None
        row_index = b.code * 2 + b.daytype
        for _ in range(max(self.iterations, 1)):
            _gather(share, row_index, share_rows)
            seen_share = b.seen_share(share_rows)
            level = self._levels(b, seen_share, usual=None if usual is None else usual[row_index])
            usual = self._usual_level(b, seen_share)
            den = b.series_sum(b.observed, [level.astype(np.float32) * m for m in b.masks])
            # k pseudo-days at the series' mean level per daytype keep shrinkage scale-free.
            lsum = np.stack([np.add.reduceat(level * m, b.starts) for m in b.masks], axis=1)
            mean_level = (lsum / np.maximum(b.days, 1))[..., None]
            k = self.shape_prior_days * np.maximum(mean_level, 1e-6)
            share = _normalise((b.num + k * prior) / (den + k))
        assert usual is not None  # the loop above ran at least once
        return share, usual.reshape(-1, 2)

    def _series_prior(self, block: DayBlock) -> np.ndarray:
        """Each series' pooled shape: its product's, else the global one."""
        product = self._series_product(block)
        prior = np.broadcast_to(self.global_share_, (len(product), 2, HOURS))
        if len(self.products_):
            pos = np.clip(np.searchsorted(self.products_, product), 0, len(self.products_) - 1)
            known = (self.products_[pos] == product) & (product >= 0)
            prior = np.where(known[:, None, None], self.product_share_[pos], prior)
        return prior

    def _levels(self, b: _Block, seen_share: np.ndarray, usual: np.ndarray | None) -> np.ndarray:
        """Day level = in-stock sales / in-stock share, shrunk towards the usual level."""
        if usual is None:
            return np.where(seen_share > 0, b.seen_sales / np.maximum(seen_share, 1e-9), 0.0)
        a = self.level_prior
        shrunk: np.ndarray = (b.seen_sales + a * usual) / (seen_share + a)
        return shrunk

    @staticmethod
    def _usual_level(b: _Block, seen_share: np.ndarray) -> np.ndarray:
        """The series' level per daytype, flat (series * 2 + daytype): a ratio estimator
        over days, shrunk to the series."""
        g2 = b.code * 2 + b.daytype
        num = np.bincount(g2, weights=b.seen_sales, minlength=2 * b.n_series)
        den = np.bincount(g2, weights=seen_share, minlength=2 * b.n_series)
        series_level = num.reshape(-1, 2).sum(axis=1) / np.maximum(
            den.reshape(-1, 2).sum(axis=1), 1e-9
        )
        # Two pseudo-days of the all-days level keep a rare daytype from being noisy.
        typed: np.ndarray = (num + 2.0 * np.repeat(series_level, 2)) / (den + 2.0)
        return typed


def _merge(
    memory: SeriesMemory, block: SeriesMemory, pos: np.ndarray, known: np.ndarray
) -> SeriesMemory:
    """``memory`` with the block's counts added to the series it knows (``known``, at
    ``pos``), and the block's series it did not know appended, in series order."""
    out_hours = memory.out_hours.astype(np.float64, copy=True)
    days = memory.days.astype(np.int64, copy=True)
    out_hours[pos[known]] += block.out_hours[known]
    days[pos[known]] += block.days[known]
    new = ~known
    series_id = np.concatenate([memory.series_id, block.series_id[new]])
    order = np.argsort(series_id, kind="stable")
    return SeriesMemory(
        series_id=series_id[order],
        share=np.concatenate([memory.share, block.share[new]])[order],
        usual=np.concatenate([memory.usual, block.usual[new]])[order],
        out_hours=np.concatenate([out_hours, block.out_hours[new]])[order],
        days=np.concatenate([days, block.days[new]])[order],
        through=max(memory.through, block.through),
    )
