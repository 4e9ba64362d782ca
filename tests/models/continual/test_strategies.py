"""The replay buffer's invariants (property tests) and the update strategies on a tiny panel."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.constants import HORIZON
from models.continual.replay import BufferConfig, ReplayBuffer, refresh_set, window_keys
from models.continual.strategies import retrain_on_windows, update_model
from models.forecasters.lgbm_rows import row_keys, rows_for_keys, window_rows
from models.forecasters.lgbm_scores import (
    cached_raw_scores,
    feature_hash,
    prior_scores,
    raw_scores,
)
from models.forecasters.lgbm_update import continue_boosting, training_set
from models.forecasters.update import UpdateConfig

START = date(2024, 3, 28)


def _keys(n_series: int, days: list[date], groups: int) -> pl.DataFrame:
    """Window keys as ``window_keys`` returns them, for ``n_series`` series on ``days``."""
    frame = pl.DataFrame(
        {
            "series_id": np.repeat(np.arange(n_series, dtype=np.int64) * 7 + 1, len(days)),
            "dt": days * n_series,
            "management_group_id": np.repeat(np.arange(n_series) % groups, len(days)),
            "y": 1.0,
        }
    ).with_columns(pl.col("dt").cast(pl.Date))
    return window_keys(frame, days=pl.lit(True), group_column="management_group_id")


stream = st.fixed_dictionaries(
    {
        "n_series": st.integers(1, 25),
        "groups": st.integers(1, 4),
        "warm": st.integers(1, 10),
        "steps": st.integers(1, 6),
        "capacity": st.integers(1, 120),
        "ratio": st.floats(0, 5),
        "seed": st.integers(0, 2**16),
        "mode": st.sampled_from(["stratified", "reservoir"]),
    }
)


def _run(p: dict, *, check: bool) -> ReplayBuffer:
    buf = ReplayBuffer(BufferConfig(capacity=p["capacity"], mode=p["mode"], seed=p["seed"]))
    warm_days = [START + timedelta(days=i) for i in range(p["warm"])]
    buf.add(_keys(p["n_series"], warm_days, p["groups"]))
    for k in range(p["steps"]):
        t = START + timedelta(days=p["warm"] + k)
        new = _keys(p["n_series"], [t], p["groups"])
        before = buf.windows_.select("series_id", "dt")
        rs = refresh_set(buf, new, through=t, replay_ratio=p["ratio"])
        if check:
            fresh = rs.filter(~pl.col("replay")).select("series_id", "dt").sort("dt", "series_id")
            # Every new window is in the refresh set, exactly once.
            assert fresh.equals(new.select("series_id", "dt").sort("dt", "series_id"))
            replayed = rs.filter(pl.col("replay")).select("series_id", "dt")
            # Replay is exactly the seeded draw from the buffer as it was before the update.
            expected = buf.sample(round(p["ratio"] * new.height), through=t)
            assert replayed.sort("dt", "series_id").equals(expected.sort("dt", "series_id"))
            assert replayed.join(before, on=["series_id", "dt"], how="anti").height == 0
            assert replayed.n_unique() == replayed.height
            # Nothing from the future: every window ends on or before t.
            assert rs["dt"].max() <= t
        buf.add(new)
        if check:
            assert len(buf) <= p["capacity"]
            assert buf.windows_.n_unique(["series_id", "dt"]) == len(buf)
    return buf


@settings(max_examples=60, deadline=None)
@given(stream)
def test_refresh_set_is_new_plus_sampled_replay_and_buffer_bounded(p: dict) -> None:
    _run(p, check=True)


@settings(max_examples=25, deadline=None)
@given(stream)
def test_buffer_is_reproducible_from_its_seed(p: dict) -> None:
    a, b = _run(p, check=False), _run(p, check=False)
    assert a.windows_.equals(b.windows_)
    assert a.seen_ == b.seen_
    t = START + timedelta(days=p["warm"] + p["steps"])
    assert a.sample(10, through=t).equals(b.sample(10, through=t))


def test_stratified_buffer_keeps_every_stratum_in_proportion() -> None:
    days = [START + timedelta(days=i) for i in range(28)]
    buf = ReplayBuffer(BufferConfig(capacity=200, seed=3)).add(_keys(40, days, 4))
    share = buf.windows_.group_by("stratum").len()
    # 4 groups x weekday/weekend = 8 strata, each near its share of 200 (weekends are 2/7).
    assert share.height == 8
    assert len(buf) == 200
    weekend = share.filter(pl.col("stratum").str.ends_with("we"))["len"].sum()
    assert abs(weekend - 200 * 8 / 28) <= 4


def test_refresh_set_rejects_a_future_window() -> None:
    buf = ReplayBuffer(BufferConfig(capacity=10))
    late = _keys(3, [START + timedelta(days=5)], 1)
    with pytest.raises(ValueError, match="future"):
        refresh_set(buf, late, through=START + timedelta(days=4), replay_ratio=1.0)


def test_buffer_persistence_round_trip_is_atomic(tmp_path: Path) -> None:
    from pipelines.training.refresh import load_buffer, save_buffer

    days = [START + timedelta(days=i) for i in range(10)]
    buf = ReplayBuffer(BufferConfig(capacity=50, seed=11)).add(_keys(12, days, 3))
    save_buffer(buf, tmp_path / "replay")
    back = load_buffer(tmp_path / "replay")
    assert back is not None
    assert back.windows_.equals(buf.windows_)
    assert (back.seen_, back.last_dt_, back.config) == (buf.seen_, buf.last_dt_, buf.config)
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [
        "manifest.json",
        "windows.parquet",
    ]
    # The manifest is the commit point: a windows file that disagrees with it is refused.
    buf.add(_keys(12, [START + timedelta(days=11)], 3))
    from pipelines.data import io

    io.write_parquet(buf.windows_.head(3), tmp_path / "replay" / "windows.parquet")
    from pipelines.errors import DataError

    with pytest.raises(DataError, match="inconsistent"):
        load_buffer(tmp_path / "replay")


# -- update strategies on a tiny simulated panel ------------------------------------------------


@pytest.fixture(scope="module")
def tiny(sim_dir: Path) -> tuple[pl.DataFrame, object, date]:
    from pipelines.data.io import scan_split
    from pipelines.training.fit import make_panel

    history = scan_split(sim_dir, "train").drop("hours_sale", "hours_stock_status")
    panel, spec = make_panel(history, None, target="censored")
    t = panel["dt"].max() - timedelta(days=3)
    return panel, spec, t


def _fit(name: str, tiny: tuple) -> Any:
    from pipelines.training.fit import fit_model

    panel, spec, t = tiny
    return fit_model(
        name, panel.filter(pl.col("dt") <= t), spec, target="censored", profile="smoke"
    )


@pytest.mark.parametrize("strategy", ["continue", "refit"])
def test_lgbm_update_returns_a_new_model_and_leaves_the_input_alone(
    tiny: tuple, strategy: str
) -> None:
    panel, _, t = tiny
    model = _fit("lgbm", tiny)
    trees = model.boosters_[0].num_trees()
    new = window_keys(
        panel, days=pl.col("dt") == t + timedelta(days=1), group_column="management_group_id"
    )
    cfg = UpdateConfig(strategy=strategy, trees=10)
    out, info = update_model(model, panel, new, through=t + timedelta(days=1), config=cfg)
    assert model.boosters_[0].num_trees() == trees
    assert model.replay_scores_ is None  # the cache went to the copy only
    assert out.boosters_[0].num_trees() == trees + (10 if strategy == "continue" else 0)
    assert out.train_end_ == t + timedelta(days=1)
    assert info["rows"] == 7 * new.height  # one stacked row per horizon


def _windows(panel: pl.DataFrame, day: date) -> pl.DataFrame:
    return window_keys(panel, days=pl.col("dt") == day, group_column="management_group_id")


def test_sampled_rows_are_the_stacked_rows_and_a_function_of_the_key(tiny: tuple) -> None:
    from models.forecasters.lgbm_rows import stack_horizons

    panel, _, t = tiny
    model = _fit("lgbm", tiny)
    c = model.config
    windows = _windows(panel, t)
    # Origin features read h - 1 days back: the same rows as the forecaster's own stacking.
    keep = ("series_id", "dt", "y", *c.target_day_features, *c.categorical)
    stacked = stack_horizons(
        panel.sort("series_id", "dt"),
        origin_features=c.origin_features,
        keep=keep,
        horizons=range(1, 8),
        target_rows=pl.col("dt") == t,
    ).sort("series_id", "dt", "horizon")
    assert window_rows(model.config, panel, windows).equals(
        stacked.select(window_rows(model.config, panel, windows).columns)
    )
    # A window brings back the same sampled rows whatever else is in the refresh set.
    half = row_keys(windows, fraction=0.4, seed=3)
    assert 0 < half.height < 7 * windows.height
    some = windows.head(windows.height // 2)
    assert row_keys(some, fraction=0.4, seed=3).equals(
        half.join(some.select("series_id", "dt"), on=["series_id", "dt"], how="semi")
    )
    assert rows_for_keys(model.config, panel, half).height == half.height


def test_continue_boosting_equals_lightgbm_init_model(tiny: tuple) -> None:
    import lightgbm as lgb

    panel, _, t = tiny
    model = _fit("lgbm", tiny)
    rows = window_rows(model.config, panel, _windows(panel, t))
    booster = model.boosters_[0]
    before = booster.model_to_string()
    params = {**model.params(), "learning_rate": 0.05}
    x = model.matrix(rows)
    reference = lgb.train(
        params, training_set(model, rows, x=x), num_boost_round=5, init_model=booster
    )
    init = booster.predict(x, raw_score=True)
    ours = continue_boosting(booster, params, training_set(model, rows, x=x, init_score=init), 5)
    assert ours.model_to_string() == reference.model_to_string()
    assert booster.model_to_string() == before


def test_cached_init_scores_equal_a_full_predict_after_several_updates(tiny: tuple) -> None:
    panel, _, t = tiny
    model = _fit("lgbm", tiny)
    days = [t - timedelta(days=3) + timedelta(days=k) for k in range(4)]
    pool = window_keys(panel, days=pl.col("dt") <= t, group_column="management_group_id")
    cfg = UpdateConfig(trees=4, row_fraction=0.5)
    for day in days[:3]:
        model, _ = update_model(
            model, panel, _windows(panel, day), through=day, config=cfg, replay_pool=pool
        )
    # Replay every window seen so far, plus the last day's new ones.
    rows = rows_for_keys(
        model.config, panel, row_keys(pool.filter(pl.col("dt") >= days[0]), fraction=0.5, seed=0)
    )
    x = model.matrix(rows)
    prior, done = prior_scores(model.replay_scores_, rows, feature_hash(x))
    booster = model.boosters_[0]
    assert {0, booster.current_iteration() - 4, booster.current_iteration() - 8} <= set(done)
    cached, valid = cached_raw_scores(booster, x, prior, done, num_threads=1)
    assert valid
    np.testing.assert_allclose(cached, booster.predict(x, raw_score=True), rtol=0, atol=1e-9)
    # Features that changed since a score was cached make it unusable, row by row.
    moved = x.copy()
    moved[:, 0] += 1.0
    assert not prior_scores(model.replay_scores_, rows, feature_hash(moved))[1].any()


def test_the_score_cache_changes_nothing_that_is_learned(tiny: tuple) -> None:
    panel, _, t = tiny
    days = [t - timedelta(days=2) + timedelta(days=k) for k in range(3)]
    pool = window_keys(panel, days=pl.col("dt") <= t, group_column="management_group_id")
    cfg = UpdateConfig(trees=4, row_fraction=0.5)
    cached: Any = _fit("lgbm", tiny)
    cold: Any = cached  # updates return copies: the two start from the same fit
    for day in days:
        # Replay the whole pool each day: most rows were scored by an earlier update.
        windows = pool.filter(pl.col("dt") <= day).select("series_id", "dt")
        cached, _ = update_model(cached, panel, windows, through=day, config=cfg, replay_pool=pool)
        cold, _ = update_model(cold, panel, windows, through=day, config=cfg)
        cold.replay_scores_ = None  # every init score from a full predict
    x = cached.matrix(window_rows(cached.config, panel, pool))
    np.testing.assert_allclose(
        cached.boosters_[0].predict(x), cold.boosters_[0].predict(x), rtol=1e-9, atol=1e-9
    )


def test_a_cache_from_other_trees_is_not_used(tiny: tuple) -> None:
    panel, _, t = tiny
    model: Any = _fit("lgbm", tiny)
    windows = _windows(panel, t)
    pool = window_keys(panel, days=pl.col("dt") <= t, group_column="management_group_id")
    two_days = pool.filter(pl.col("dt") >= t - timedelta(days=1))
    model, _ = update_model(
        model, panel, two_days, through=t, config=UpdateConfig(trees=3), replay_pool=pool
    )
    rows = window_rows(model.config, panel, windows)
    x = model.matrix(rows)
    prior, done = prior_scores(model.replay_scores_, rows, feature_hash(x))
    assert done.all()
    # Same tree structure, new leaf values (what a refit leaves behind): the cache is stale.
    other = model.boosters_[0].refit(x, rows["y"].to_numpy(), decay_rate=0.5)
    fresh = other.predict(x, raw_score=True)
    assert not np.allclose(raw_scores(other, x, prior, done, num_threads=1), fresh)
    stale, valid = cached_raw_scores(other, x, prior, done, num_threads=1)
    assert not valid
    np.testing.assert_allclose(stale, fresh, rtol=0, atol=1e-9)
    # An update on swapped boosters re-scores every row and keeps none of the old entries
    # (not even those of day t - 1, which it does not train on).
    swapped = copy.copy(model)
    swapped.boosters_ = [other]
    after: Any
    after, _ = update_model(
        swapped, panel, windows, through=t, config=UpdateConfig(), replay_pool=pool
    )
    assert set(after.replay_scores_["iters"]) == {other.current_iteration()}
    assert after.replay_scores_["dt"].unique().to_list() == [t]
    # The refit strategy itself drops the cache.
    refit, _ = update_model(model, panel, windows, through=t, config=UpdateConfig(strategy="refit"))
    assert refit.replay_scores_ is None


def test_update_rejects_windows_after_through(tiny: tuple) -> None:
    panel, _, t = tiny
    model = _fit("lgbm", tiny)
    late = window_keys(
        panel, days=pl.col("dt") == t + timedelta(days=2), group_column="management_group_id"
    )
    with pytest.raises(ValueError, match="future"):
        update_model(model, panel, late, through=t + timedelta(days=1))


def test_neural_fine_tune_and_scratch_retrain(tiny: tuple) -> None:
    import torch

    panel, _, t = tiny
    model = _fit("neural", tiny)
    nets = model.nets()
    assert len(nets) == model.config.nets == 2
    before = [[p.detach().clone() for p in net.parameters()] for net in nets]
    new = window_keys(
        panel, days=pl.col("dt") == t + timedelta(days=1), group_column="management_group_id"
    )
    out, info = update_model(
        model, panel, new, through=t + timedelta(days=1), config=UpdateConfig(epochs=1)
    )
    for old, net, updated in zip(before, nets, out.nets(), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(old, net.parameters(), strict=True))
        assert any(not torch.equal(a, b) for a, b in zip(old, updated.parameters(), strict=True))
    assert info["work"] == new.height * 2  # one epoch over the windows, per net
    scratch, _ = retrain_on_windows(model, panel, new, through=t + timedelta(days=1))
    assert (
        scratch.predict(panel.filter(pl.col("dt") <= t + timedelta(days=1)).pipe(_cut, t)).height
        > 0
    )


def test_neural_update_skips_windows_without_a_full_lookback(tiny: tuple) -> None:
    """Like the full fit, an update never trains on a lookback padded before the history."""
    import torch

    panel, _, t = tiny
    model = _fit("neural", tiny)
    first_full = panel["dt"].min() + timedelta(days=model.config.lookback + 6)
    keys = window_keys(
        panel,
        days=pl.col("dt").is_between(first_full - timedelta(days=2), first_full),
        group_column="management_group_id",
    )
    full = keys.filter(pl.col("dt") == first_full)
    assert 0 < full.height < keys.height
    _, info = update_model(model, panel, keys, through=t, config=UpdateConfig(epochs=1))
    assert info["rows"] == full.height
    early = keys.filter(pl.col("dt") < first_full)
    before = [p.detach().clone() for p in model.nets()[0].parameters()]
    out, info = update_model(model, panel, early, through=t, config=UpdateConfig(epochs=1))
    assert info["rows"] == info["work"] == 0
    after = list(out.nets()[0].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_neural_refresh_puts_the_in_sample_level_back_where_the_fit_left_it(tiny: tuple) -> None:
    """MAE fine-tuning drifts the forecast level; the anchored refresh restores the fit's."""
    from models.forecasters.neural_update import window_index

    panel, _, t = tiny
    model = _fit("neural", tiny)
    assert model.level_ == 1.0
    assert 0.5 < model.fit_level_ < 2  # measured where the fit trained: no padded lookbacks
    day = t + timedelta(days=1)
    windows = window_keys(
        panel,
        days=pl.col("dt").is_between(t - timedelta(days=6), day),
        group_column="management_group_id",
    )
    arrays, s, o, _ = window_index(model, panel.filter(pl.col("dt") <= day), windows)
    strong = UpdateConfig(epochs=3, fine_tune_lr=5e-3)  # enough to move the level
    free, _ = update_model(
        model, panel, windows, through=day, config=replace(strong, anchor_level=False)
    )
    anchored, _ = update_model(model, panel, windows, through=day, config=strong)
    assert free.level_ == 1.0
    assert abs(free.in_sample_level(arrays, s, o) / model.fit_level_ - 1) > 0.005
    assert anchored.in_sample_level(arrays, s, o) == pytest.approx(model.fit_level_, rel=1e-6)
    # Same weights (same seed), so the anchor is the only difference, and it scales every head.
    cut = _cut(panel.filter(pl.col("dt") <= day), day)
    a, f = anchored._predict_point(cut), free._predict_point(cut)
    for col in ("yhat", "yhat_p10", "yhat_p50", "yhat_p90"):
        assert np.allclose(a[col].to_numpy(), anchored.level_ * f[col].to_numpy())

    # Without a usable fit level (no sales where the fit measured it) nothing is guessed.
    model.fit_level_ = float("nan")
    unknown, _ = update_model(model, panel, windows, through=day, config=strong)
    assert unknown.level_ == 1.0
    assert np.isfinite(unknown._predict_point(cut)["yhat"].to_numpy()).all()
    no_sales = type(arrays)(np.zeros_like(arrays.y), arrays.so, arrays.known, arrays.static)
    assert np.isnan(anchored.in_sample_level(no_sales, s, o))


def _cut(panel: pl.DataFrame, origin: date) -> pl.DataFrame:
    from models.forecasters.panel import with_origin

    return with_origin(panel, origin)


def test_distilled_replay_holds_the_replayed_windows_where_the_model_had_them(
    tiny: tuple,
) -> None:
    """replay_targets="forecast": replayed windows are trained toward the model's own
    pre-update outputs, so they stay close to them; trained toward their sales they move."""
    from models.forecasters.neural_update import window_index

    panel, _, t = tiny
    model = _fit("neural", tiny)
    day = t + timedelta(days=1)
    keys = window_keys(
        panel,
        days=pl.col("dt").is_between(t - timedelta(days=6), day),
        group_column="management_group_id",
    )
    # The new day's windows are new; the week before it, which the fit saw, is replayed.
    windows = keys.with_columns((pl.col("dt") <= t).alias("replay"))
    arrays, s, o, replayed = window_index(model, panel.filter(pl.col("dt") <= day), windows)
    assert 0 < replayed.sum() < len(replayed)
    strong = UpdateConfig(epochs=3, fine_tune_lr=5e-3, anchor_level=False)

    def moved(cfg: UpdateConfig) -> tuple[float, float]:
        out, _ = update_model(model, panel, windows, through=day, config=cfg)
        before, after = model.forecast_windows(arrays, s, o), out.forecast_windows(arrays, s, o)
        change = np.abs(after - before).mean(axis=(1, 2)) / (np.abs(before).mean() + 1e-9)
        return float(change[replayed].mean()), float(change[~replayed].mean())

    fit_replay, _ = moved(strong)
    held_replay, _ = moved(replace(strong, replay_targets="forecast"))
    assert held_replay < 0.5 * fit_replay

    # The new windows still learn their sales: their error against them falls.
    new_s, new_o = s[~replayed], o[~replayed]
    sales = arrays.y[new_s[:, None], new_o[:, None] + np.arange(HORIZON)]

    def new_window_error(m: object) -> float:
        point = m.forecast_windows(arrays, new_s, new_o)[:, :, 0]  # type: ignore[attr-defined]
        return float(np.nanmean(np.abs(point - sales)))

    distilled, _ = update_model(
        model, panel, windows, through=day, config=replace(strong, replay_targets="forecast")
    )
    assert new_window_error(distilled) < new_window_error(model)
    # Without replayed windows there is nothing to hold: the same update either way.
    fresh = windows.filter(~pl.col("replay"))
    a, _ = update_model(model, panel, fresh, through=day, config=strong)
    b, _ = update_model(
        model, panel, fresh, through=day, config=replace(strong, replay_targets="forecast")
    )
    assert np.array_equal(a.forecast_windows(arrays, s, o), b.forecast_windows(arrays, s, o))
