"""Each forecaster on the smoke profile: shapes, quantiles, serialisation, no look-ahead."""

from __future__ import annotations

import copy
import pickle
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from models.constants import PRED_COLUMNS
from models.continual.replay import window_keys
from models.forecasters import MODEL_NAMES, Forecaster, make_forecaster
from models.forecasters.bands import ConformalBands
from models.forecasters.ensemble import EnsembleForecaster
from models.forecasters.lgbm import LGBMForecaster
from models.forecasters.lgbm_rows import forecast_rows, stack_horizons
from models.forecasters.panel import last_history_day, with_origin
from models.forecasters.update import UpdateConfig
from pipelines.data.io import scan_split
from pipelines.features.build import FeatureSpec
from pipelines.training.fit import make_panel, spec_dict


@pytest.fixture(scope="module")
def panel_and_spec(sim_dir: Path) -> tuple[pl.DataFrame, FeatureSpec]:
    hist = scan_split(sim_dir, "train")
    fut = scan_split(sim_dir, "eval")
    return make_panel(hist, fut, target="censored")


@pytest.fixture(scope="module")
def fitted(panel_and_spec: tuple[pl.DataFrame, FeatureSpec]) -> dict[str, Forecaster]:
    panel, spec = panel_and_spec
    out: dict[str, Forecaster] = {}
    for name in MODEL_NAMES:
        if name == "ensemble":
            continue
        model = make_forecaster(name, target="censored", features=spec_dict(spec), profile="smoke")
        out[name] = model.fit(panel)
    cfg = make_forecaster("ensemble", profile="smoke", features=spec_dict(spec)).config
    out["ensemble"] = EnsembleForecaster.from_fitted(
        cfg, [out[m] for m in cfg.members], target="censored"
    )
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forecast_shape_and_quantiles(
    name: str, fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    pred = fitted[name].predict(panel)
    future = panel.filter(pl.col("is_future")).select("series_id", "dt")
    assert pred.columns == ["series_id", "dt", *PRED_COLUMNS]
    assert pred.height == future.height
    assert pred.join(future, on=["series_id", "dt"], how="anti").height == 0
    q = pred.select("yhat_p10", "yhat_p50", "yhat_p90").to_numpy()
    assert np.isfinite(q).all()
    assert (q >= 0).all()
    assert (np.diff(q, axis=1) >= -1e-12).all()
    assert (pred["yhat"] >= 0).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_and_self_description(
    name: str, fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    model = fitted[name]
    again = Forecaster.load(model.save())
    assert again.predict(panel).equals(model.predict(panel))
    info = again.describe()
    assert info["model"] == name
    assert info["target"] == "censored"
    assert info["train_end"] == str(panel.filter(~pl.col("is_future"))["dt"].max())
    assert info["features"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forecasts_from_the_windowed_panel_equal_the_full_panel(
    name: str, fitted: dict[str, Forecaster], sim_dir: Path
) -> None:
    # `freshcast forecast` builds features for the forecast days only (features_from);
    # every model must forecast exactly as from the fully featured panel.
    hist, fut = scan_split(sim_dir, "train"), scan_split(sim_dir, "eval")
    full, _ = make_panel(hist, fut, target="censored")
    first = full.filter(pl.col("is_future"))["dt"].min()
    windowed, _ = make_panel(hist, fut, target="censored", features_from=first)
    assert windowed.height == full.height
    assert windowed.columns == full.columns
    want = fitted[name].predict(full)
    got = fitted[name].predict(windowed)
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_lgbm_reads_only_its_named_features(fitted: dict[str, Forecaster]) -> None:
    names = fitted["lgbm"].feature_names_
    assert "y" not in names
    assert "sale_amount" not in names
    assert "horizon" in names


def test_ensemble_weights_form_a_simplex(fitted: dict[str, Forecaster]) -> None:
    ens = fitted["ensemble"]
    assert isinstance(ens, EnsembleForecaster)
    w = ens.weights_
    assert len(w) == 3
    assert (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)


def test_forecast_rows_equal_the_stacked_rows_of_the_forecast_days(
    panel_and_spec: tuple[pl.DataFrame, FeatureSpec],
) -> None:
    panel, spec = panel_and_spec
    origin = last_history_day(panel)
    day_features = (*spec.target_day, *spec.categorical)
    stacked = stack_horizons(
        panel.filter(pl.col("dt") > origin).sort("series_id", "dt"),
        origin_features=spec.origin,
        keep=("series_id", "dt", *day_features),
        horizons=range(1, 8),
        target_rows=pl.lit(True),
    ).filter((pl.col("dt") - pl.lit(origin)).dt.total_days() == pl.col("horizon"))
    fast = forecast_rows(panel, origin, spec.origin, day_features)
    assert fast.height == stacked.height == panel.filter(pl.col("is_future")).height
    keys = ["series_id", "dt"]
    assert fast.select(stacked.columns).sort(keys).equals(stacked.sort(keys))


def test_refit_trains_on_the_calibration_week_and_keeps_its_bands(
    panel_and_spec: tuple[pl.DataFrame, FeatureSpec],
) -> None:
    panel, spec = panel_and_spec

    def lgbm() -> LGBMForecaster:
        model = make_forecaster(
            "lgbm", target="censored", features=spec_dict(spec), profile="smoke"
        )
        assert isinstance(model, LGBMForecaster)
        return model

    cut_only = lgbm().fit(panel, refit=False)
    refitted = lgbm().fit(panel)
    # Bands and bias come from the held-out week, the same for both.
    for part in ("edges_", "offsets_"):
        assert np.array_equal(
            getattr(refitted.bands_, part),
            getattr(cut_only.bands_, part),
        )
    assert refitted.bias_ == cut_only.bias_
    # The refit's training rows reach the last history day; the first fit's stop 7 days before.
    assert refitted.train_rows_ > cut_only.train_rows_
    assert not refitted.predict(panel)["yhat"].equals(cut_only.predict(panel)["yhat"])


@pytest.mark.parametrize("name", ["lgbm", "ssa", "seasonal_naive"])
def test_forecast_ignores_targets_after_the_origin(
    name: str, fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    hist = panel.filter(~pl.col("is_future"))
    origin = last_history_day(hist) - timedelta(days=7)
    cut = with_origin(hist, origin)
    assert (
        cut.filter(pl.col("is_future"))["y"].null_count() == cut.filter(pl.col("is_future")).height
    )
    # Scrambling the (already hidden) later targets of the source panel changes nothing.
    noisy = hist.with_columns(
        pl.when(pl.col("dt") > origin).then(pl.col("y") * 100 + 5).otherwise(pl.col("y"))
    )
    a = fitted[name].predict(cut)
    b = fitted[name].predict(with_origin(noisy, origin))
    assert a.equals(b)


def test_conformal_bands_cover_eighty_percent() -> None:
    rng = np.random.default_rng(0)
    yhat = rng.gamma(2.0, 1.0, 20_000)
    y = yhat * rng.lognormal(0, 0.4, yhat.size)
    bands = ConformalBands().fit(yhat[:10_000], y[:10_000])
    q = bands.apply(yhat[10_000:])
    inside = (y[10_000:] >= q[:, 0]) & (y[10_000:] <= q[:, 2])
    assert 0.77 < inside.mean() < 0.83


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        make_forecaster("prophet")


# -- the rest of the interface: update, fit on windows, records, old pickles -------------------


def _last_day_windows(panel: pl.DataFrame) -> tuple[pl.DataFrame, date]:
    through = last_history_day(panel)
    return window_keys(
        panel, days=pl.col("dt") == through, group_column="management_group_id"
    ), through


@pytest.mark.parametrize("name", ["ssa", "seasonal_naive", "moving_average"])
def test_a_baseline_update_is_free_and_changes_no_forecast(
    name: str, fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    windows, through = _last_day_windows(panel)
    model = fitted[name].copy()
    info = model.update(panel, windows, through=through)
    assert (info["work"], info["rows"], info["probe_curve"]) == (0.0, 0, [])
    assert model.train_end_ == through
    # Its state is recent history, read when it forecasts: the forecast is the fit's.
    assert model.predict(panel).equals(fitted[name].predict(panel))
    with pytest.raises(NotImplementedError, match="windows alone"):
        model.fit_windows(panel, windows, through=through)


def test_an_ensemble_update_updates_its_members_and_keeps_its_weights(
    fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    windows, through = _last_day_windows(panel)
    ens = fitted["ensemble"].copy()
    assert isinstance(ens, EnsembleForecaster)
    with pytest.raises(ValueError, match="own default"):
        ens.update(panel, windows, through=through, config=UpdateConfig())
    info = ens.update(panel, windows, through=through)
    assert [m["windows"] for m in info["members"]] == [windows.height] * 3
    assert info["work"] == sum(m["work"] for m in info["members"]) > 0
    assert all(m.train_end_ == through for m in ens.members_)
    before = fitted["ensemble"]
    assert isinstance(before, EnsembleForecaster)
    assert np.array_equal(ens.weights_, before.weights_)
    # Some member learned the day, and the blend moved exactly when a member with weight did
    # (the weights come from the data, and one may be 0).
    moved = [
        not m.predict(panel)["yhat"].equals(b.predict(panel)["yhat"])
        for m, b in zip(ens.members_, before.members_, strict=True)
    ]
    assert any(moved)
    weighted = any(m and w > 0 for m, w in zip(moved, ens.weights_, strict=True))
    assert weighted == (not ens.predict(panel)["yhat"].equals(before.predict(panel)["yhat"]))
    with pytest.raises(ValueError, match="future"):
        ens.update(panel, windows, through=through - timedelta(days=1))


def test_records_travel_with_the_model(panel_and_spec: tuple[pl.DataFrame, FeatureSpec]) -> None:
    panel, _ = panel_and_spec
    model = make_forecaster("seasonal_naive", target="censored")
    assert (model.metadata_, model.refresh_log_) == ({}, [])
    model.fit(panel, metadata={"feature_config": {"lags": [7]}})
    assert model.metadata_ == {"feature_config": {"lags": [7]}}
    model.log_refresh({"through": "2024-06-01"})
    shallow = copy.copy(model)
    shallow.log_refresh({"through": "2024-06-02"})
    assert [e["through"] for e in model.refresh_log_] == ["2024-06-01"]
    assert len(shallow.refresh_log_) == 2
    again = Forecaster.load(shallow.save())
    assert (again.metadata_, again.refresh_log_) == (shallow.metadata_, shallow.refresh_log_)
    # A new fit is a new model: its records start empty.
    refit = again.fit(panel)
    assert (refit.metadata_, refit.refresh_log_) == ({}, [])


def test_a_model_pickled_before_the_records_loads_with_them(
    fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    old = copy.copy(fitted["lgbm"])
    del old.metadata_, old.refresh_log_
    old.pipeline_meta_ = {"feature_config": {"lags": [7, 14]}}  # how pipelines recorded it
    back = Forecaster.load(pickle.dumps(old))
    assert back.metadata_ == {"feature_config": {"lags": [7, 14]}}
    assert back.refresh_log_ == []
    assert not hasattr(back, "pipeline_meta_")
    assert back.predict(panel).equals(fitted["lgbm"].predict(panel))


def test_feature_importance_is_lightgbm_s(fitted: dict[str, Forecaster]) -> None:
    gain = fitted["lgbm"].feature_importance()
    assert gain is not None
    assert gain["feature"].to_list()[0] in fitted["lgbm"].feature_names_
    assert fitted["ssa"].feature_importance() is None
