"""SeriesMemory: recovering a few days with the statistics of a whole-history recovery."""

from __future__ import annotations

import numpy as np
import pytest

from models.recovery import METHODS, DayBlock, SeriesMemory, make_recoverer
from models.recovery.base import BUSINESS, HOURS
from tests.models.test_recovery import SMOKE

N_SERIES, DAYS = 30, 28


@pytest.fixture(scope="module")
def block() -> DayBlock:
    """30 series x 28 days (sorted by series, day), evening peaks, afternoon sell-outs."""
    rng = np.random.default_rng(5)
    n = N_SERIES * DAYS
    shape = np.exp(-0.5 * ((np.arange(HOURS) - 17) / 3.0) ** 2) + 0.05
    level = rng.gamma(2.0, 1.0, size=(n, 1)) * 10
    sale = rng.poisson(level * shape / shape.sum()) / 10.0
    stockout = np.zeros_like(sale, dtype=bool)
    sold_out = rng.random(n) < 0.4
    start = rng.integers(10, 21, size=n)
    stockout[sold_out] = np.arange(HOURS) >= start[sold_out, None]
    sale = np.where(stockout, 0.0, sale)
    code = np.repeat(np.arange(N_SERIES), DAYS)
    return DayBlock(
        series_id=code.astype(np.int64) + 1_000_001,
        day=np.tile(np.arange(DAYS), N_SERIES).astype(np.int64) + 19_800,
        sale=sale,
        stockout=stockout,
        series_code=code.astype(np.int64),
        n_series=N_SERIES,
        context={"product_id": (code % 4).astype(np.float64), "discount": np.ones(n)},
    )


def _days(block: DayBlock, first: int) -> np.ndarray:
    return np.flatnonzero(block.day >= block.day.min() + first)


@pytest.mark.parametrize("method", METHODS)
def test_a_tail_recovered_with_the_memory_equals_the_whole_recovery(
    method: str, block: DayBlock
) -> None:
    """Given the memory of a recovery of the whole block, its last days recovered from a
    block of just those days (and the context days before them) get the same demand."""
    model = make_recoverer(method, **SMOKE[method]).fit_block(block)
    whole, memory = model.recover_and_remember(block)
    assert np.array_equal(whole, model.recover_block(block))
    first = DAYS - 5
    tail = block.take(_days(block, first - model.context_days))
    part = model.recover_block(tail, memory)
    keep = tail.day >= block.day.min() + first
    expected = whole[_days(block, first)]
    if method == "neural":  # batched matmuls may round differently in another batch
        np.testing.assert_allclose(part[keep], expected, rtol=1e-5, atol=1e-9)
    else:
        assert np.array_equal(part[keep], expected)
    # Without the memory the tail's own few days make coarser statistics.
    alone = model.recover_block(tail)
    assert not np.allclose(alone[keep], expected)


def test_the_memory_counts_new_days_once_and_learns_new_series(block: DayBlock) -> None:
    model = make_recoverer("profile").fit_block(block)
    head = block.take(_days(block, 0)[block.day < block.day.min() + DAYS - 3])
    _, memory = model.recover_and_remember(head)
    assert memory.n == N_SERIES
    assert memory.through == head.day.max()
    # The last three days, with one day of overlap: the overlap is not counted twice.
    tail = block.take(_days(block, DAYS - 4))
    _, merged = model.recover_and_remember(tail, memory)
    _, whole = model.recover_and_remember(block)
    assert merged.through == whole.through
    assert np.array_equal(merged.days, whole.days)
    assert np.array_equal(merged.out_hours, whole.out_hours)
    # Shapes and levels stay the memory's (those of the history it was made from).
    assert np.array_equal(merged.share, memory.share)
    assert np.array_equal(merged.usual, memory.usual)
    # A series the memory never saw is estimated from the block and joins the memory.
    newcomer = DayBlock(
        series_id=np.full(3, 999_000_001, dtype=np.int64),
        day=np.arange(3, dtype=np.int64) + int(block.day.max()) + 1,
        sale=block.sale[:3],
        stockout=block.stockout[:3],
        series_code=np.zeros(3, dtype=np.int64),
        n_series=1,
        context={"product_id": np.zeros(3)},
    )
    demand, grown = model.recover_and_remember(newcomer, merged)
    assert grown.n == N_SERIES + 1
    assert grown.series_id[-1] == 999_000_001
    assert grown.days[-1] == 3
    assert grown.out_hours[-1] == block.stockout[:3, BUSINESS].sum()
    assert (demand >= newcomer.sale).all()


def test_an_empty_block_keeps_the_memory(block: DayBlock) -> None:
    model = make_recoverer("profile").fit_block(block)
    _, memory = model.recover_and_remember(block)
    empty = block.take(np.zeros(0, dtype=np.int64))
    demand, same = model.recover_and_remember(empty, memory)
    assert demand.shape == (0, HOURS)
    assert same is memory
    assert model.recover_and_remember(empty)[1].n == SeriesMemory.empty().n == 0
