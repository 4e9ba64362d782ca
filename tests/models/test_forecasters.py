"""Each forecaster on the smoke profile: shapes, quantiles, serialisation, no look-ahead."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from models.forecasters import MODEL_NAMES, Forecaster, make_forecaster
from models.forecasters.base import PRED_COLUMNS, ConformalBands, with_origin
from models.forecasters.ensemble import EnsembleForecaster
from models.forecasters.lgbm import forecast_rows, stack_horizons
from pipelines.features.build import FeatureSpec
from pipelines.training.fit import make_panel, spec_dict
from pipelines.data.io import scan_split


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
    again = Forecaster.from_bytes(model.to_bytes())
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
    w = fitted["ensemble"].weights_  # type: ignore[attr-defined]
    assert len(w) == 3
    assert (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)


def test_forecast_rows_equal_the_stacked_rows_of_the_forecast_days(
    panel_and_spec: tuple[pl.DataFrame, FeatureSpec],
) -> None:
    panel, spec = panel_and_spec
    origin = panel.filter(~pl.col("is_future"))["dt"].max()
    day_features = (*spec.target_day, *spec.categorical)
    stacked = stack_horizons(
        panel.filter(pl.col("dt") > origin).sort("series_id", "dt"),
        origin_features=spec.origin,
        keep=("series_id", "dt", *day_features),
        horizons=range(1, 8),
        target_rows=pl.lit(True),
    ).filter((pl.col("dt") - pl.lit(origin)).dt.total_days() == pl.col("horizon"))
    fast = forecast_rows(panel, origin, spec.origin, day_features)  # type: ignore[arg-type]
    assert fast.height == stacked.height == panel.filter(pl.col("is_future")).height
    keys = ["series_id", "dt"]
    assert fast.select(stacked.columns).sort(keys).equals(stacked.sort(keys))


def test_refit_trains_on_the_calibration_week_and_keeps_its_bands(
    panel_and_spec: tuple[pl.DataFrame, FeatureSpec],
) -> None:
    panel, spec = panel_and_spec

    def lgbm() -> Forecaster:
        return make_forecaster("lgbm", target="censored", features=spec_dict(spec), profile="smoke")

    cut_only = lgbm().fit(panel, refit=False)
    refitted = lgbm().fit(panel)
    # Bands and bias come from the held-out week, the same for both.
    for part in ("edges_", "offsets_"):
        assert np.array_equal(
            getattr(refitted.bands_, part),  # type: ignore[attr-defined]
            getattr(cut_only.bands_, part),  # type: ignore[attr-defined]
        )
    assert refitted.bias_ == cut_only.bias_  # type: ignore[attr-defined]
    # The refit's training rows reach the last history day; the first fit's stop 7 days before.
    assert refitted.train_rows_ > cut_only.train_rows_  # type: ignore[attr-defined]
    assert not refitted.predict(panel)["yhat"].equals(cut_only.predict(panel)["yhat"])


@pytest.mark.parametrize("name", ["lgbm", "ssa", "seasonal_naive"])
def test_forecast_ignores_targets_after_the_origin(
    name: str, fitted: dict[str, Forecaster], panel_and_spec: tuple[pl.DataFrame, FeatureSpec]
) -> None:
    panel, _ = panel_and_spec
    hist = panel.filter(~pl.col("is_future"))
    origin = hist["dt"].max() - timedelta(days=7)  # type: ignore[operator]
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
