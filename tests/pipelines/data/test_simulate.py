"""The censored-demand simulator: schema, invariants, determinism, censoring, realism."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.data.contract import HOURS, KEY_COLUMNS, RAW_SCHEMA, TRUTH_SCHEMA
from pipelines.data.simulate import SimulatedData, SimulationConfig, simulate, write_simulation
from pipelines.data.simulate_world import realism_metrics

CONFIG = SimulationConfig(series=300, days=35, eval_days=7, seed=3)


@pytest.fixture(scope="module")
def data() -> SimulatedData:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def realistic() -> SimulatedData:
    """About the size the realism band is meant for: 500 series, the published 90 days."""
    return simulate(SimulationConfig(series=500, days=90, eval_days=0, seed=11))


def _hours(frame: pl.DataFrame, col: str) -> np.ndarray:
    return frame[col].list.to_array(HOURS).to_numpy()


def _check_invariants(
    frame: pl.DataFrame, config: SimulationConfig, n_days: int, first: int
) -> None:
    """Every invariant the strict validator checks, on one split."""
    assert frame.schema == pl.Schema(RAW_SCHEMA)
    assert frame.height == config.series * n_days
    if frame.height == 0:
        return
    sales, flags = _hours(frame, "hours_sale"), _hours(frame, "hours_stock_status")
    assert (frame["hours_sale"].list.len() == HOURS).all()
    assert (frame["hours_stock_status"].list.len() == HOURS).all()
    np.testing.assert_allclose(frame["sale_amount"].to_numpy(), sales.sum(axis=1), atol=1e-6)
    np.testing.assert_array_equal(
        frame["stock_hour6_22_cnt"].to_numpy(), flags[:, 6:22].sum(axis=1)
    )
    assert set(np.unique(flags)) <= {0, 1}
    assert (sales >= 0).all()
    np.testing.assert_allclose(sales * 10, np.round(sales * 10), atol=1e-9)  # multiples of 0.1
    discount = frame["discount"].to_numpy()
    assert ((discount > 0) & (discount <= 1)).all()
    for col in ("holiday_flag", "activity_flag"):
        assert set(frame[col].unique().to_list()) <= {0, 1}
    for col in ("precpt", "avg_temperature", "avg_humidity", "avg_wind_level"):
        assert frame[col].null_count() == 0
        assert frame[col].is_finite().all()
    # Sorted by key, no duplicates, and every series has every day, without gaps.
    assert frame.select(KEY_COLUMNS).equals(frame.select(KEY_COLUMNS).sort(KEY_COLUMNS))
    assert frame.select(KEY_COLUMNS).is_duplicated().sum() == 0
    expected = [(config.start + dt.timedelta(days=first + i)).isoformat() for i in range(n_days)]
    per_series = frame.group_by("store_id", "product_id").agg(pl.col("dt"))
    assert per_series.height == config.series
    assert all(days == expected for days in per_series["dt"].to_list())


def _check_hierarchy(frame: pl.DataFrame) -> None:
    """Stores nest in cities; products nest in third > second > first > group categories."""
    for child, parent in [
        ("store_id", "city_id"),
        ("product_id", "third_category_id"),
        ("third_category_id", "second_category_id"),
        ("second_category_id", "first_category_id"),
        ("first_category_id", "management_group_id"),
    ]:
        parents = frame.group_by(child).agg(pl.col(parent).n_unique())
        assert (parents[parent] == 1).all(), f"{child} is not nested in {parent}"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="series"):
        SimulationConfig(series=0)
    with pytest.raises(ValueError, match="series"):
        SimulationConfig(series=50_001)
    with pytest.raises(ValueError, match="days"):
        SimulationConfig(days=0)
    with pytest.raises(ValueError, match="eval_days"):
        SimulationConfig(eval_days=-1)
    with pytest.raises(ValueError, match="integer"):
        SimulationConfig(series=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start"):
        SimulationConfig(start="2024-03-28")  # type: ignore[arg-type]


def test_schemas_are_exact(data: SimulatedData) -> None:
    assert list(data.train.schema.items()) == list(RAW_SCHEMA.items())
    assert list(data.eval.schema.items()) == list(RAW_SCHEMA.items())
    assert list(data.truth.schema.items()) == list(TRUTH_SCHEMA.items())


def test_invariants_hold(data: SimulatedData) -> None:
    _check_invariants(data.train, CONFIG, CONFIG.days, 0)
    _check_invariants(data.eval, CONFIG, CONFIG.eval_days, CONFIG.days)
    _check_hierarchy(pl.concat([data.train, data.eval]))
    assert data.train["dt"].min() == "2024-03-28"


def test_series_pairs_are_unique_and_consistent_across_splits(data: SimulatedData) -> None:
    pairs = data.train.select("store_id", "product_id").unique()
    assert pairs.height == CONFIG.series
    ids = [c for c in RAW_SCHEMA if c.endswith("_id")]
    assert (
        data.train.select(ids).unique().sort(ids).equals(data.eval.select(ids).unique().sort(ids))
    )


def test_truth_bounds_sales(data: SimulatedData) -> None:
    """Demand >= sales every hour; equal where the product was in stock all hour."""
    both = pl.concat([data.train, data.eval])
    assert data.truth.height == both.height
    joined = both.join(data.truth, on=list(KEY_COLUMNS), how="inner", validate="1:1")
    assert joined.height == both.height
    sales, flags = _hours(joined, "hours_sale"), _hours(joined, "hours_stock_status")
    demand = _hours(joined, "hours_demand")
    assert (demand >= sales - 1e-9).all()
    np.testing.assert_array_equal(demand[flags == 0], sales[flags == 0])
    np.testing.assert_allclose(joined["demand_amount"].to_numpy(), demand.sum(axis=1), atol=1e-6)
    # Censoring hides demand: some flagged hours had more demand than sales.
    assert (demand[flags == 1] > sales[flags == 1]).mean() > 0.1


def test_censoring_depends_on_demand(data: SimulatedData) -> None:
    """Days with demand above the series' usual level stock out more often."""
    frame = (
        data.train.join(data.truth, on=list(KEY_COLUMNS))
        .with_columns(
            high=pl.col("demand_amount")
            > pl.col("demand_amount").median().over("store_id", "product_id"),
            stockout=pl.col("stock_hour6_22_cnt") > 0,
        )
        .group_by("high")
        .agg(pl.col("stockout").mean())
    )
    share = dict(frame.iter_rows())
    assert share[True] > share[False] + 0.1


def test_stockouts_persist_until_restock(data: SimulatedData) -> None:
    """Flags mostly run to the close once set (no sales without stock), like the real data."""
    flags = _hours(data.train, "hours_stock_status")[:, 6:22]
    out = flags.sum(axis=1) > 0
    suffix = np.all(np.diff(flags, axis=1) >= 0, axis=1)
    assert suffix[out].mean() > 0.6
    # Night flags carry over from the previous evening's stockout.
    night = _hours(data.train, "hours_stock_status")[:, 0]
    assert 0.2 < night.mean() < 0.6


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    config = SimulationConfig(series=40, days=14, eval_days=3, seed=5)
    first = write_simulation(config, tmp_path / "a")
    second = write_simulation(config, tmp_path / "b")
    other = write_simulation(
        SimulationConfig(series=40, days=14, eval_days=3, seed=6), tmp_path / "c"
    )
    assert set(first) == {"train", "eval", "truth"}
    for name, path in first.items():
        assert path == tmp_path / "a" / f"{name}.parquet"
        assert path.read_bytes() == second[name].read_bytes()
        assert path.read_bytes() != other[name].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "eval.parquet",
        "train.parquet",
        "truth.parquet",
    ]


def test_written_files_read_back(sim_dir: Path) -> None:
    """The shared fixture's files have the contract's schemas."""
    assert pl.read_parquet_schema(sim_dir / "train.parquet") == dict(RAW_SCHEMA)
    assert pl.read_parquet_schema(sim_dir / "eval.parquet") == dict(RAW_SCHEMA)
    assert pl.read_parquet_schema(sim_dir / "truth.parquet") == dict(TRUTH_SCHEMA)
    assert pl.scan_parquet(sim_dir / "train.parquet").select(pl.len()).collect().item() == 60 * 42


def test_no_eval_days() -> None:
    data = simulate(SimulationConfig(series=5, days=3, eval_days=0, seed=1))
    assert data.eval.height == 0
    assert data.eval.schema == pl.Schema(RAW_SCHEMA)
    assert data.truth.height == 15


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    series=st.integers(1, 80),
    days=st.integers(1, 12),
    eval_days=st.integers(0, 4),
    seed=st.integers(0, 2**32),
    offset=st.integers(0, 400),
)
def test_invariants_property(
    series: int, days: int, eval_days: int, seed: int, offset: int
) -> None:
    config = SimulationConfig(
        series=series,
        days=days,
        eval_days=eval_days,
        seed=seed,
        start=dt.date(2023, 6, 1) + dt.timedelta(days=offset),
    )
    data = simulate(config)
    _check_invariants(data.train, config, days, 0)
    _check_invariants(data.eval, config, eval_days, days)
    _check_hierarchy(data.train)
    joined = data.train.join(data.truth, on=list(KEY_COLUMNS))
    assert (_hours(joined, "hours_demand") >= _hours(joined, "hours_sale")).all()


def test_hierarchy_scales_to_real_sizes() -> None:
    from pipelines.data.simulate_world import build_hierarchy

    h = build_hierarchy(50_000, np.random.default_rng(0))
    assert (h.n_cities, h.n_stores, h.n_products) == (18, 898, 865)
    assert len(np.unique(h.first_category_id)) == 32
    assert len(np.unique(h.management_group_id)) == 7
    pairs = h.store_id * 1_000_000 + h.product_id
    assert len(np.unique(pairs)) == 50_000
    assert np.all(np.diff(pairs) > 0)  # sorted by store, then product


@pytest.mark.parametrize("n_series", [1, 2, 3, 7, 60, 199, 500, 2_345, 10_000])
def test_hierarchy_has_exactly_the_requested_series(n_series: int) -> None:
    from pipelines.data.simulate_world import build_hierarchy

    h = build_hierarchy(n_series, np.random.default_rng(n_series))
    pairs = h.store_id * 1_000_000 + h.product_id
    assert len(pairs) == n_series
    assert np.all(np.diff(pairs) > 0)
    assert h.n_cities <= 18
    assert h.n_stores <= 898
    assert h.n_products <= 865


def test_realism_within_band(realistic: SimulatedData) -> None:
    """A 500-series simulation lands near the real split's figures (loose bands)."""
    m = realism_metrics(realistic.train)
    bands = {
        "stockout_day_share": (0.3, 0.6),  # real 0.443
        "mean_stockout_hours": (2.0, 4.5),  # real 3.18
        "full_day_stockout_share": (0.015, 0.08),  # real 0.040
        "night_flag_share_h0": (0.3, 0.55),  # real 0.411
        "zero_sale_day_share": (0.02, 0.09),  # real 0.045
        "sale_mean": (0.7, 1.4),  # real 1.0
        "sale_median": (0.4, 1.0),  # real 0.7
        "sale_p99": (3.5, 9.0),  # real 5.8
        "discount_share": (0.4, 0.65),  # real 0.515
        "activity_share": (0.25, 0.5),  # real 0.378
        "holiday_share": (0.3444, 0.3445),  # the same calendar as the real split
        "sales_share_h6_11": (0.38, 0.55),  # real 0.462
        "zero_sale_hour_share": (0.65, 0.85),  # real 0.778
    }
    outside = {k: round(m[k], 4) for k, (lo, hi) in bands.items() if not lo <= m[k] <= hi}
    assert not outside, outside
    assert m["peak_sales_hour"] in (8.0, 9.0, 10.0)
    assert m["avg_temperature_min"] >= 12.0
    assert m["avg_temperature_max"] <= 31.0


def test_stockouts_pick_busy_days_as_strongly_as_the_real_ones(realistic: SimulatedData) -> None:
    """What sets the clean-day bias of a demand forecast (docs/data.md, clean-day bias).

    Within a series, stockout days sell about what clean days do (real 1.04; 1.40 before
    the calibration), stockouts come in spells (real 0.62 after a stockout day, 0.30 after
    a clean one), and busy series stock out more than quiet ones (real 0.49 vs 0.43).
    """
    from pipelines.data.simulate_world import selection_metrics

    m = selection_metrics(realistic.train)
    assert 0.9 < m["within_series_stockout_sales_ratio"] < 1.2
    assert m["stockout_after_stockout"] > m["stockout_after_clean"] + 0.2
    assert m["stockout_share_busiest_q"] > m["stockout_share_quietest_q"]


def test_chunks_in_parallel_match_sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several chunks, run two at a time or one by one, give the same frames."""
    import pipelines.data.simulate as sim

    config = SimulationConfig(series=sim.CHUNK_SERIES + 50, days=2, eval_days=1, seed=4)
    parallel = simulate(config)
    monkeypatch.setattr(sim, "_MAX_WORKERS", 1)
    sequential = simulate(config)
    for name in ("train", "eval", "truth"):
        assert getattr(parallel, name).equals(getattr(sequential, name))
    assert parallel.train.height == config.series * 2
