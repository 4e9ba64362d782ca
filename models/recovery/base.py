"""The stage-1 interface: a recoverer fits on, and recovers, the hourly long view.

A recoverer reads the hourly long view (one row per series-hour: ``series_id``, ``dt``,
``hour``, ``sale``, ``stockout``) plus an optional daily context frame keyed by
(``series_id``, ``dt``). Context stays daily on purpose: broadcasting 8 covariates to
108 M hourly rows would cost ~7 GB for information that is constant within a day.

Internally every method works on a :class:`DayBlock`, the same data as dense
``(n_days, 24)`` numpy arrays, because a series-day's 24 hours are contiguous in the
sorted long view. The base class owns the hard invariants, so no method can break them:

* observed in-stock hours are returned unchanged;
* recovered demand >= observed sales in every hour (a stockout hour's sales are a lower
  bound on its demand: the product may have sold out part-way through the hour);
* no NaN; every input row is kept, in order.

A recovery also returns a :class:`SeriesMemory`: the per-series statistics it estimated
from every day it saw (intraday shape, usual level, stockout rate). Handing it back to a
later :meth:`Recoverer.recover_block` lets a few new days be recovered with the statistics
of the whole history without reading that history again (the daily job's incremental
recovery, ``pipelines/recovery/incremental.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import polars as pl

HOURS = 24
# The published stockout count covers business hours 6..21 (Python slice 6:22).
BUSINESS = slice(6, 22)
N_BUSINESS = 16
HOURLY_COLUMNS: tuple[str, ...] = ("series_id", "dt", "hour", "sale", "stockout")


@dataclass(frozen=True)
class DayBlock:
    """One row per series-day, the hours as columns.

    Attributes:
        series_id: (n,) Int64 series keys, sorted with ``dt`` within a series.
        day: (n,) int days since 1970-01-01.
        sale: (n, 24) observed sales.
        stockout: (n, 24) True where the hour was flagged out of stock.
        series_code: (n,) dense 0..n_series-1 code of ``series_id``.
        n_series: number of distinct series.
        context: daily covariates as (n,) float arrays (NaN where missing).
    """

    series_id: np.ndarray
    day: np.ndarray
    sale: np.ndarray
    stockout: np.ndarray
    series_code: np.ndarray
    n_series: int
    context: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.series_id)

    @property
    def weekday(self) -> np.ndarray:
        """ISO weekday 0=Monday..6=Sunday (1970-01-01 was a Thursday)."""
        return (self.day + 3) % 7

    def take(self, rows: np.ndarray) -> DayBlock:
        """A sub-block of the given rows (kept in order), with series codes re-densified."""
        sid = self.series_id[rows]
        _, code = np.unique(sid, return_inverse=True)
        return DayBlock(
            series_id=sid,
            day=self.day[rows],
            sale=self.sale[rows],
            stockout=self.stockout[rows],
            series_code=code.astype(np.int64),
            n_series=int(code.max()) + 1 if len(code) else 0,
            context={k: v[rows] for k, v in self.context.items()},
        )

    def with_hours(self, sale: np.ndarray, stockout: np.ndarray) -> DayBlock:
        """The same days with other hourly arrays (used to apply synthetic masks)."""
        return DayBlock(
            self.series_id,
            self.day,
            sale,
            stockout,
            self.series_code,
            self.n_series,
            self.context,
        )


@dataclass(frozen=True)
class SeriesMemory:
    """What a recovery estimated about each series from all the days it saw.

    Attributes:
        series_id: (m,) sorted series keys.
        share: (m, 2, 24) float32 intraday shape per daytype (weekday, weekend).
        usual: (m, 2) the series' usual day level per daytype.
        out_hours: (m,) business stockout hours, summed over the days counted.
        days: (m,) days counted.
        through: the last day counted (days since 1970-01-01); a block recovered with this
            memory adds only its days after ``through`` to ``out_hours`` and ``days``.
    """

    series_id: np.ndarray
    share: np.ndarray
    usual: np.ndarray
    out_hours: np.ndarray
    days: np.ndarray
    through: int

    @classmethod
    def empty(cls) -> SeriesMemory:
        return cls(
            series_id=np.zeros(0, dtype=np.int64),
            share=np.zeros((0, 2, HOURS), dtype=np.float32),
            usual=np.zeros((0, 2)),
            out_hours=np.zeros(0),
            days=np.zeros(0, dtype=np.int64),
            through=-(2**31),
        )

    @property
    def n(self) -> int:
        return len(self.series_id)

    def lookup(self, series_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``series_id`` in this memory, and whether each is there at all."""
        if self.n == 0:
            return np.zeros(len(series_id), dtype=np.int64), np.zeros(len(series_id), bool)
        pos = np.clip(np.searchsorted(self.series_id, series_id), 0, self.n - 1)
        return pos, self.series_id[pos] == series_id


def to_day_block(hourly: pl.DataFrame, context: pl.DataFrame | None = None) -> DayBlock:
    """Reshape the hourly long view into a :class:`DayBlock`.

    Reads ``series_id``, ``dt``, ``hour``, ``sale``, ``stockout`` from ``hourly`` and any
    numeric columns of ``context`` (keyed by ``series_id``, ``dt``). The long view must
    hold all 24 hours of each series-day, sorted by series, day and hour, as
    ``pipelines.data.contract.to_hourly`` makes it.

    Raises:
        ValueError: when columns are missing or the hours are not complete and sorted.
    """
    missing = [c for c in HOURLY_COLUMNS if c not in hourly.columns]
    if missing:
        raise ValueError(f"hourly frame lacks columns {missing}")
    if hourly.height % HOURS:
        raise ValueError("hourly frame must hold 24 hours per series-day")
    hour = hourly["hour"].to_numpy().reshape(-1, HOURS)
    if not (hour == np.arange(HOURS)).all():
        raise ValueError("hourly frame must be sorted by series_id, dt, hour with all 24 hours")
    days = hourly.select("series_id", "dt").gather_every(HOURS)
    series_id = days["series_id"].to_numpy()
    day = days["dt"].cast(pl.Int32).to_numpy().astype(np.int64)
    if len(series_id) > 1:
        step_ok = (np.diff(series_id) > 0) | ((np.diff(series_id) == 0) & (np.diff(day) > 0))
        if not step_ok.all():
            raise ValueError("hourly frame must be sorted by series_id, dt, hour")
    # A null sale carries no information; treat it as an unobserved (stockout) hour.
    sale_raw = hourly["sale"].to_numpy().reshape(-1, HOURS)
    nan = np.isnan(sale_raw)
    sale = np.where(nan, 0.0, sale_raw) if nan.any() else sale_raw
    stockout = hourly["stockout"].fill_null(1).to_numpy().reshape(-1, HOURS) != 0
    stockout = stockout | nan
    code = np.zeros(len(series_id), dtype=np.int64)
    if len(series_id) > 1:
        code[1:] = np.cumsum(np.diff(series_id) != 0)
    ctx: dict[str, np.ndarray] = {}
    if context is not None and context.height:
        cols = [
            c
            for c, t in context.schema.items()
            if c not in ("series_id", "dt") and (t.is_numeric() or t == pl.Boolean)
        ]
        joined = days.join(
            context.select("series_id", "dt", *cols).unique(["series_id", "dt"], keep="first"),
            on=["series_id", "dt"],
            how="left",
            maintain_order="left",
        )
        ctx = {c: joined[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in cols}
    return DayBlock(
        series_id=series_id,
        day=day,
        sale=sale,
        stockout=stockout,
        series_code=code,
        n_series=int(code[-1]) + 1 if len(code) else 0,
        context=ctx,
    )


def enforce_invariants(block: DayBlock, estimate: np.ndarray) -> np.ndarray:
    """Merge an estimate with the observations so the hard invariants hold.

    In-stock hours keep their observed sales; stockout hours get max(estimate, sale);
    NaN / negative / infinite estimates fall back to the observed sale.
    """
    # In place on one fresh array: on the full split each new (n, 24) array costs ~0.5 s.
    out = np.array(estimate, dtype=np.float64)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.maximum(out, block.sale, out=out)
    np.copyto(out, block.sale, where=~block.stockout)
    return out


class Recoverer(ABC):
    """Base class of stage-1 methods: ``fit`` on an hourly frame, then ``recover`` it.

    Subclasses implement :meth:`_fit_block` and :meth:`_estimate_block`, which returns an
    unconstrained ``(n, 24)`` demand estimate and the block's :class:`SeriesMemory`; the
    base class applies the invariants. Fitted attributes end in ``_``.
    """

    name: str = "base"
    # Days on either side whose rows a day's estimate reads (neighbour-day features): an
    # incremental recovery gives a block this much context and recovers this many of the
    # days before the new ones again, since their next day has now arrived.
    context_days: int = 1

    def fit(self, hourly: pl.DataFrame, context: pl.DataFrame | None = None) -> Self:
        """Learn from the in-stock hours of ``hourly`` (stockout hours are never targets)."""
        return self.fit_block(to_day_block(hourly, context))

    def fit_block(self, block: DayBlock) -> Self:
        """:meth:`fit` on a prepared :class:`DayBlock`."""
        self._fit_block(block)
        self.is_fitted_ = True
        return self

    def recover(self, hourly: pl.DataFrame, context: pl.DataFrame | None = None) -> pl.DataFrame:
        """Recover latent hourly demand.

        Reads the hourly long view; returns it with ``demand`` (Float64: observed sales in
        in-stock hours, the estimate in stockout hours) and ``imputed`` (Boolean: the hour
        was a stockout, so ``demand`` is an estimate) added. Rows and order are kept.
        """
        block = to_day_block(hourly, context)
        demand = self.recover_block(block)
        return hourly.with_columns(
            pl.Series("demand", demand.ravel(), dtype=pl.Float64),
            pl.Series("imputed", block.stockout.ravel(), dtype=pl.Boolean),
        )

    def recover_block(self, block: DayBlock, memory: SeriesMemory | None = None) -> np.ndarray:
        """:meth:`recover` on a prepared block; returns the ``(n, 24)`` demand array.

        ``memory``: per-series statistics of an earlier recovery (see
        :meth:`recover_and_remember`), used instead of the block's own for the series it
        knows; None estimates them from the block alone.
        """
        self._check_fitted()
        if block.n == 0:
            return np.zeros((0, HOURS))
        if not block.stockout.any():
            return block.sale.astype(np.float64, copy=True)
        return enforce_invariants(block, self._estimate_block(block, memory)[0])

    def recover_and_remember(
        self, block: DayBlock, memory: SeriesMemory | None = None
    ) -> tuple[np.ndarray, SeriesMemory]:
        """:meth:`recover_block`, plus the per-series statistics the recovery used.

        Returns the demand array and a :class:`SeriesMemory`: the block's statistics, or,
        when ``memory`` is given, ``memory`` with its stockout counts brought up to the
        block's last day and the series it did not know added.
        """
        self._check_fitted()
        if block.n == 0:
            return np.zeros((0, HOURS)), memory if memory is not None else SeriesMemory.empty()
        estimate, learned = self._estimate_block(block, memory)
        return enforce_invariants(block, estimate), learned

    def _check_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def fit_recover(
        self, hourly: pl.DataFrame, context: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """:meth:`fit` then :meth:`recover` on the same frame (the usual transductive use)."""
        return self.fit(hourly, context).recover(hourly, context)

    @abstractmethod
    def _fit_block(self, block: DayBlock) -> None: ...

    @abstractmethod
    def _estimate_block(
        self, block: DayBlock, memory: SeriesMemory | None
    ) -> tuple[np.ndarray, SeriesMemory]: ...
