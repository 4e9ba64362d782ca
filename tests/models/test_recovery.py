"""Hard invariants of every stage-1 method, as hypothesis properties, plus the interface."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.recovery import METHODS, make_recoverer, to_day_block
from models.recovery.base import HOURS
from models.recovery.masks import MaskSpec, eligible_days, hidden_rate, sample_mask

# Smoke settings: each method learns something but fits in well under a second.
SMOKE: dict[str, dict] = {
    "profile": {},
    "lgbm": {
        "n_estimators": 5,
        "num_leaves": 7,
        "min_child_samples": 5,
        "max_fit_series": 50,
        "n_threads": 1,
    },
    "neural": {"hidden": 8, "max_steps": 3, "batch_size": 64, "max_fit_series": 50},
}


def make_frames(
    sale: np.ndarray, stockout: np.ndarray, n_series: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hourly long view and daily context of (n_series * days, 24) arrays."""
    n = sale.shape[0]
    days = n // n_series
    start = dt.date(2024, 3, 28)
    series = np.repeat(np.arange(n_series, dtype=np.int64) + 1_000_001, days)
    dates = [start + dt.timedelta(days=int(d)) for d in np.tile(np.arange(days), n_series)]
    context = pl.DataFrame(
        {
            "series_id": series,
            "dt": dates,
            "product_id": (series % 3).astype(np.int64),
            "discount": np.tile(np.linspace(0.8, 1.0, days), n_series),
            "holiday_flag": np.zeros(n, dtype=np.int32),
            "activity_flag": np.ones(n, dtype=np.int32),
        }
    )
    hourly = pl.DataFrame(
        {
            "series_id": np.repeat(series, HOURS),
            "dt": np.repeat(np.array(dates, dtype="datetime64[D]"), HOURS),
            "hour": np.tile(np.arange(HOURS, dtype=np.int8), n),
            "sale": sale.ravel(),
            "stockout": stockout.ravel().astype(np.int8),
        }
    )
    return hourly, context


@st.composite
def censored_panels(draw):
    """Small panels: hourly sales in tenths, random stockout hours, some clean series."""
    n_series = draw(st.integers(1, 4))
    days = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    p_out = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    rng = np.random.default_rng(seed)
    sale = rng.poisson(rng.uniform(0.0, 3.0), size=(n_series * days, HOURS)) / 10.0
    stockout = rng.random((n_series * days, HOURS)) < p_out
    if draw(st.booleans()):
        stockout[:days] = False  # the first series never runs out
    return sale, stockout, n_series


def check_invariants(hourly: pl.DataFrame, out: pl.DataFrame) -> None:
    assert out.height == hourly.height
    assert out.select("series_id", "dt", "hour").equals(hourly.select("series_id", "dt", "hour"))
    demand = out["demand"].to_numpy()
    sale = hourly["sale"].to_numpy()
    stock = hourly["stockout"].to_numpy() != 0
    assert not np.isnan(demand).any()
    assert np.array_equal(demand[~stock], sale[~stock])  # in-stock hours unchanged
    assert (demand >= sale).all()  # recovered >= observed in every hour
    assert np.array_equal(out["imputed"].to_numpy(), stock)


def _check_panel(method: str, panel) -> None:
    sale, stockout, n_series = panel
    hourly, context = make_frames(sale, stockout, n_series)
    out = make_recoverer(method, **SMOKE[method]).fit_recover(hourly, context)
    check_invariants(hourly, out)
    # A series without stockouts passes through untouched.
    days = sale.shape[0] // n_series
    for s in range(n_series):
        rows = slice(s * days * HOURS, (s + 1) * days * HOURS)
        if not stockout[s * days : (s + 1) * days].any():
            assert np.array_equal(out["demand"].to_numpy()[rows], sale.ravel()[rows])


@settings(max_examples=40, deadline=None)
@given(panel=censored_panels())
def test_invariants_hold_for_profile(panel) -> None:
    _check_panel("profile", panel)


# The learned methods train a model per example (Lightning's Trainer alone costs ~1 s),
# so they get fewer examples; their invariants are enforced by the shared base class.
@pytest.mark.parametrize("method", ["lgbm", "neural"])
@settings(max_examples=6, deadline=None)
@given(panel=censored_panels())
def test_invariants_hold_for_learned_methods(method: str, panel) -> None:
    _check_panel(method, panel)


@pytest.fixture(scope="module")
def panel() -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """40 series x 30 days with a daily level and an evening peak; afternoon sell-outs."""
    rng = np.random.default_rng(3)
    n_series, days = 40, 30
    shape = np.exp(-0.5 * ((np.arange(HOURS) - 17) / 3.0) ** 2) + 0.05
    level = rng.gamma(2.0, 1.0, size=(n_series * days, 1)) * 10
    sale = rng.poisson(level * shape / shape.sum()) / 10.0
    stockout = np.zeros_like(sale, dtype=bool)
    sold_out = rng.random(n_series * days) < 0.4
    start = rng.integers(10, 21, size=n_series * days)
    stockout[sold_out] = np.arange(HOURS) >= start[sold_out, None]
    sale = np.where(stockout, 0.0, sale)
    hourly, context = make_frames(sale, stockout, n_series)
    return hourly, context, stockout


@pytest.mark.parametrize("method", METHODS)
def test_learned_methods_train_and_raise_stockout_days(method: str, panel) -> None:
    hourly, context, stockout = panel
    model = make_recoverer(method, **SMOKE[method]).fit(hourly, context)
    assert model.is_fitted_
    if method != "profile":
        assert model.n_train_rows_ > 20
    out = model.recover(hourly, context)
    check_invariants(hourly, out)
    demand = out["demand"].to_numpy().reshape(-1, HOURS)
    sale = hourly["sale"].to_numpy().reshape(-1, HOURS)
    days = stockout.any(axis=1)
    assert demand[days].sum() > sale[days].sum()  # sold-out evenings had demand


def test_unfitted_and_unknown() -> None:
    with pytest.raises(ValueError, match="unknown recovery method"):
        make_recoverer("magic")
    hourly, _ = make_frames(np.zeros((2, HOURS)), np.ones((2, HOURS), bool), 1)
    with pytest.raises(RuntimeError, match="not fitted"):
        make_recoverer("profile").recover(hourly)


def test_day_block_rejects_unsorted_or_partial_hours() -> None:
    hourly, _ = make_frames(np.zeros((2, HOURS)), np.zeros((2, HOURS), bool), 1)
    with pytest.raises(ValueError, match="sorted"):
        to_day_block(hourly.reverse())
    with pytest.raises(ValueError, match="24 hours"):
        to_day_block(hourly.head(30))
    with pytest.raises(ValueError, match="lacks columns"):
        to_day_block(hourly.drop("stockout"))


def test_masks_hide_only_clean_days_near_the_rate() -> None:
    rng = np.random.default_rng(0)
    n_series, days = 200, 60
    sale = rng.poisson(2.0, size=(n_series * days, HOURS)) / 10.0
    stockout = np.zeros_like(sale, dtype=bool)
    stockout[rng.random(len(sale)) < 0.3, 15:] = True  # real stockouts on 30% of days
    stockout[:, 0] = True  # night flags, as in the real data
    code = np.repeat(np.arange(n_series), days)
    for rate in (0.1, 0.3, 0.5):
        mask = sample_mask(sale, stockout, code, MaskSpec(rate=rate, seed=1))
        assert not (mask & stockout).any()  # never a real stockout hour
        assert not mask[~eligible_days(stockout)].any()  # only stockout-free days
        assert abs(hidden_rate(mask, stockout) - rate) < 0.05


def test_demand_dependent_masks_prefer_busy_days() -> None:
    rng = np.random.default_rng(1)
    n_series, days = 300, 60
    sale = rng.poisson(
        rng.gamma(2.0, 1.0, size=(n_series * days, 1)), size=(n_series * days, HOURS)
    )
    stockout = np.zeros(sale.shape, dtype=bool)
    code = np.repeat(np.arange(n_series), days)
    mask = sample_mask(sale / 10.0, stockout, code, MaskSpec(rate=0.3, demand_dependent=True))
    hit = mask.any(axis=1)
    assert sale.sum(axis=1)[hit].mean() > 1.2 * sale.sum(axis=1)[~hit].mean()
    with pytest.raises(ValueError, match="missing rate"):
        MaskSpec(rate=1.5)


def test_lgbm_sellout_rows_add_training_rows(panel) -> None:
    hourly, context, _ = panel
    plain = make_recoverer("lgbm", **SMOKE["lgbm"]).fit(hourly, context)
    busy = make_recoverer("lgbm", **SMOKE["lgbm"], stockout_day_weight=0.5).fit(hourly, context)
    assert busy.n_train_rows_ > plain.n_train_rows_
    check_invariants(hourly, busy.recover(hourly, context))
