"""recover_demand, run_recover and `freshcast recover`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from models.recovery import make_recoverer, to_day_block
from pipelines.cli import app
from pipelines.data.contract import HOURS, RECOVERED_SCHEMA
from pipelines.data.io import scan_parquet, scan_split
from pipelines.errors import DataError
from pipelines.evaluation.recovery import subsample_series
from pipelines.recovery.recover import (
    CONTEXT_COLUMNS,
    day_block_from_daily,
    prepare_daily,
    recover_demand,
    run_recover,
)

FAST_LGBM = {"n_estimators": 10, "num_leaves": 7, "max_fit_series": 30, "n_threads": 1}


def to_hourly(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The hourly long view (one row per series-hour), built independently of the fast path."""
    return (
        frame.select(
            "series_id",
            "dt",
            pl.int_ranges(0, HOURS, dtype=pl.Int8).alias("hour"),
            pl.col("hours_sale").alias("sale"),
            pl.col("hours_stock_status").cast(pl.List(pl.Int8)).alias("stockout"),
        )
        .explode("hour", "sale", "stockout")
        .sort("series_id", "dt", "hour")
    )


def check_recovered(daily: pl.DataFrame, out: pl.DataFrame) -> None:
    """The section-4 contract of a recovered frame against its (sorted) input."""
    assert dict(out.schema) == RECOVERED_SCHEMA
    assert out.height == daily.height
    assert out.select("store_id", "product_id", "dt").equals(
        daily.select("store_id", "product_id", "dt")
    )
    demand = np.vstack(out["hours_demand"].to_list())
    sale = np.vstack(daily["hours_sale"].to_list())
    stock = np.vstack(daily["hours_stock_status"].to_list()) != 0
    assert not np.isnan(demand).any()
    assert np.array_equal(demand[~stock], sale[~stock])
    assert (demand >= sale).all()
    assert np.allclose(out["demand_amount"].to_numpy(), demand.sum(axis=1))
    assert np.array_equal(out["imputed_hours"].to_numpy(), stock.sum(axis=1))


@pytest.fixture(scope="module")
def sim_daily(sim_dir: Path) -> pl.DataFrame:
    return scan_split(sim_dir).sort("series_id", "dt").collect()


def test_prepare_daily_sorts_shuffled_rows_and_keeps_sorted_ones(sim_daily: pl.DataFrame) -> None:
    in_order = prepare_daily(sim_daily.lazy())
    shuffled = prepare_daily(sim_daily.sample(fraction=1.0, shuffle=True, seed=3).lazy())
    assert shuffled.equals(in_order)
    assert in_order.select("series_id", "dt").equals(
        sim_daily.sort("series_id", "dt").select("series_id", "dt")
    )
    # A null key is named, with its row, instead of slipping past the order check.
    no_day = sim_daily.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("dt")).alias("dt")
    )
    with pytest.raises(DataError, match="row 5: 1 rows have no dt"):
        prepare_daily(no_day.lazy())
    # Same day twice: not sorted, so the duplicate check still sees it.
    doubled = pl.concat([sim_daily.head(3), sim_daily.head(1)])
    with pytest.raises(DataError, match="more than once"):
        prepare_daily(doubled.lazy())


def test_block_from_daily_equals_the_hourly_view(sim_daily: pl.DataFrame) -> None:
    frame = prepare_daily(sim_daily.lazy())
    fast = day_block_from_daily(frame)
    ctx = frame.select("series_id", "dt", *[c for c in CONTEXT_COLUMNS if c in frame.columns])
    slow = to_day_block(to_hourly(frame.lazy()).collect(), ctx)
    for name in ("series_id", "day", "sale", "stockout", "series_code"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.context.keys() == slow.context.keys()
    for k in fast.context:
        assert np.array_equal(fast.context[k], slow.context[k], equal_nan=True)


@pytest.mark.parametrize("method", ["profile", "lgbm"])
def test_recover_demand_keeps_the_contract(sim_daily: pl.DataFrame, method: str) -> None:
    opts = FAST_LGBM if method == "lgbm" else {}
    out = recover_demand(sim_daily.lazy(), recoverer=make_recoverer(method, **opts))
    check_recovered(sim_daily, out)
    stockout_days = out["imputed_hours"].to_numpy() > 0
    assert (
        out["demand_amount"].to_numpy()[stockout_days].sum()
        > sim_daily["sale_amount"].to_numpy()[stockout_days].sum()
    )


def test_recover_demand_accepts_raw_hub_rows_in_any_order(sim_dir: Path, sim_daily) -> None:
    raw = pl.read_parquet(sim_dir / "train.parquet").reverse()  # String dt, no series_id
    out = recover_demand(raw.lazy(), method="profile")
    check_recovered(sim_daily, out)


def test_recover_demand_rejects_broken_rows(sim_daily: pl.DataFrame) -> None:
    short = sim_daily.head(3).with_columns(pl.col("hours_sale").list.head(20))
    with pytest.raises(DataError, match="24-long"):
        recover_demand(short.lazy(), method="profile")
    with pytest.raises(DataError, match="more than once"):
        recover_demand(pl.concat([sim_daily.head(2)] * 2).lazy(), method="profile")
    with pytest.raises(DataError, match="needs columns"):
        recover_demand(sim_daily.drop("hours_stock_status").lazy(), method="profile")


def test_run_recover_writes_the_file(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "recovered" / "r.parquet"
    info = run_recover(sim_dir, "profile", out)
    assert info["rows"] == pl.read_parquet(sim_dir / "train.parquet").height
    assert info["seconds"] >= info["seconds_recover"] >= 0
    assert dict(scan_parquet(out).collect_schema()) == RECOVERED_SCHEMA


def test_cli_recover(sim_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.parquet"
    res = runner.invoke(
        app, ["recover", "--data", str(sim_dir), "--method", "profile", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "recovered" in res.output
    assert out.is_file()
    bad = runner.invoke(
        app, ["recover", "--data", str(sim_dir), "--method", "x", "--out", str(out)]
    )
    assert bad.exit_code == 1
    assert "unknown method" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["recover", "--data", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


@pytest.mark.real
@pytest.mark.slow
def test_recover_real_subsample(real_dir: Path) -> None:
    daily = subsample_series(scan_split(real_dir), 150, seed=0).sort("series_id", "dt").collect()
    out = recover_demand(daily.lazy(), method="lgbm")
    check_recovered(daily, out)
    assert (out["demand_amount"] >= daily["sale_amount"] - 1e-9).all()
