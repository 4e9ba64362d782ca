"""Synthetic stockout masks, shaped the way real stockouts hide hours.

Used twice, with different seeds: by the masking evaluation protocol (hide hours of
stockout-free days, recover, score) and by the learned methods, which train on the same
kind of self-made masks over the in-stock days of their *input*. Since a method only
ever sees its input frame, hours the protocol hid are never targets in training.

Mask shapes (all hours of the mask are hidden, night hours included):

* ``tail``: sold out from hour s (7..21) to the end of the day;
* ``head``: stock arrived late, hidden from hour 0 to hour e-1 (e in 7..14);
* ``block``: whole days, 1 to 3 in a row within a series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.recovery.base import BUSINESS, HOURS, N_BUSINESS

# Share of mask events per shape. Expected hidden business hours per event:
# tail 8, head 4.5, block 16 * 2 days.
SHAPE_P = {"tail": 0.5, "head": 0.25, "block": 0.25}
_HOURS_PER_EVENT = 0.5 * 8 + 0.25 * 4.5 + 0.25 * 16 * 2


@dataclass(frozen=True)
class MaskSpec:
    """How to hide hours.

    Attributes:
        rate: target share of business hours hidden among eligible days (0 < rate < 1).
        demand_dependent: when True, the chance a day is masked rises with its sales
            rank within its series (real stockouts hit high-demand days).
        seed: random seed.
    """

    rate: float = 0.3
    demand_dependent: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"missing rate must be in (0, 1), got {self.rate}")


def eligible_days(stockout: np.ndarray) -> np.ndarray:
    """Days with no real stockout in business hours (``stock_hour6_22_cnt == 0``)."""
    return np.asarray(~stockout[:, BUSINESS].any(axis=1))


def _sales_rank(sale: np.ndarray, code: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Each eligible day's sales percentile within its series, in (0, 1]."""
    total = np.where(eligible, sale.sum(axis=1), -np.inf)
    order = np.lexsort((total, code))
    rank = np.empty(len(code), dtype=np.float64)
    start = np.r_[0, np.flatnonzero(np.diff(code[order])) + 1]
    pos = np.arange(len(code)) - np.repeat(start, np.diff(np.r_[start, len(code)]))
    rank[order] = pos
    n_inel = np.bincount(code, weights=~eligible, minlength=code.max() + 1 if len(code) else 0)
    n_el = np.bincount(code, weights=eligible, minlength=len(n_inel))
    # Ineligible days sort first (-inf), so subtract them from the position.
    pct: np.ndarray = (rank - n_inel[code] + 1) / np.maximum(n_el[code], 1)
    return pct


def _draw(
    sale: np.ndarray,
    code: np.ndarray,
    eligible: np.ndarray,
    spec: MaskSpec,
    q: float,
    rng: np.random.Generator,
) -> np.ndarray:
    n = len(code)
    p = np.full(n, q)
    if spec.demand_dependent:
        # Linear in rank with mean 1: the top day is twice as likely as the median one.
        p = q * 2.0 * _sales_rank(sale, code, eligible)
    event = eligible & (rng.random(n) < np.minimum(p, 1.0))
    kind = rng.choice(3, size=n, p=list(SHAPE_P.values()))
    hidden = np.zeros((n, HOURS), dtype=bool)
    hours = np.arange(HOURS)
    tail = event & (kind == 0)
    start = rng.integers(7, 22, size=n)
    hidden |= tail[:, None] & (hours >= start[:, None])
    head = event & (kind == 1)
    end = rng.integers(7, 15, size=n)
    hidden |= head[:, None] & (hours < end[:, None])
    block = event & (kind == 2)
    length = rng.integers(1, 4, size=n)
    whole = block.copy()
    for lag in (1, 2):
        if n <= lag:
            break
        carried = np.zeros(n, dtype=bool)  # day d is inside a block that started at d - lag
        carried[lag:] = (block & (length > lag))[:-lag] & (code[lag:] == code[:-lag])
        whole |= carried & eligible
    hidden |= whole[:, None]
    return hidden


def sample_mask(
    sale: np.ndarray, stockout: np.ndarray, series_code: np.ndarray, spec: MaskSpec
) -> np.ndarray:
    """Draw a ``(n, 24)`` boolean mask of hours to hide, on eligible days only.

    ``sale``/``stockout`` are a :class:`~models.recovery.base.DayBlock`'s arrays,
    sorted by series and day. The event probability is calibrated once so the achieved
    share of hidden business hours is close to ``spec.rate``. Hours already flagged
    (e.g. night stockouts on eligible days) are never in the mask.
    """
    rng = np.random.default_rng(spec.seed)
    eligible = eligible_days(stockout)
    n_el = int(eligible.sum())
    if n_el == 0:
        return np.zeros(sale.shape, dtype=bool)
    q = spec.rate * N_BUSINESS / _HOURS_PER_EVENT
    probe = _draw(sale, series_code, eligible, spec, q, np.random.default_rng(spec.seed + 1))
    achieved = probe[:, BUSINESS].sum() / (n_el * N_BUSINESS)
    if achieved > 0:
        q *= spec.rate / achieved
    mask: np.ndarray = _draw(sale, series_code, eligible, spec, q, rng) & ~stockout
    return mask


def hidden_rate(mask: np.ndarray, stockout: np.ndarray) -> float:
    """Achieved share of eligible days' business hours that ``mask`` hides."""
    eligible = eligible_days(stockout)
    n = int(eligible.sum())
    return float(mask[eligible][:, BUSINESS].sum() / (n * N_BUSINESS)) if n else 0.0
