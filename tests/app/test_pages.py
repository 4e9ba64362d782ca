"""Every page of the Streamlit app, with AppTest: on simulated data with a registered model,
and in an empty project (no data, no model, no job), where each page says what to run."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.home import CONFIG, build_home

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
PAGES = ("overview", "series", "stockouts", "forecasts", "models", "jobs")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home with simulated data, the daily job's outputs and a champion."""
    root = tmp_path_factory.mktemp("home")
    before = os.environ.get("FRESHCAST_HOME")
    try:
        settings = build_home(root)
        history = pl.DataFrame(
            {
                "through": ["2024-05-06", "2024-05-07", "2024-05-08"],
                "acc": [0.61, 0.615, 0.62],
                "full_retrain_acc": [0.612, 0.616, 0.621],
                "seconds": [1.5, 1.4, 1.6],
                "full_retrain_seconds": [9.0, 9.2, 9.1],
            }
        )
        from pipelines.data import io

        io.write_parquet(history, settings.layout.continual_history)
    finally:
        if before is None:
            os.environ.pop("FRESHCAST_HOME", None)
        else:
            os.environ["FRESHCAST_HOME"] = before
    return root


def open_page(monkeypatch: pytest.MonkeyPatch, root: Path, page: str) -> AppTest:
    monkeypatch.setenv("FRESHCAST_HOME", str(root))
    monkeypatch.delenv("FRESHCAST_DATA", raising=False)
    monkeypatch.delenv("FRESHCAST_TRACKING_URI", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# -- with data and a model ------------------------------------------------------------------


def test_overview(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "overview")
    assert_clean(at)
    m = metrics(at)
    assert m["Series"] == str(CONFIG.series)
    assert m["Days of data"] == str(CONFIG.days)
    assert m["Forecast horizon"] == "7 days"
    assert m["Stockout days, last 7"].endswith("%")
    assert float(m["Lost sales, last 28 days"].replace(",", "")) > 0
    assert m["Version"].startswith("v")
    assert 0 < float(m["acc"]) <= 1
    assert charts(at) == 4  # observed vs recovered, stockout share, lost by city and category
    assert len(at.dataframe) == 1  # the last job run's steps
    at.segmented_control(key="overview-window").set_value(28).run()
    assert_clean(at)
    assert any("last 28 days" in md.value for md in at.markdown)


def test_series_explorer(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "series")
    assert_clean(at)
    m = metrics(at)
    assert int(m["Stockout hours, 28 days"].replace(",", "")) > 0  # the most-censored series
    assert charts(at) == 4  # heatmap, observed vs recovered, forecast band, covariates
    at.segmented_control(key="series-mode").set_value("Store and product").run()
    store = at.selectbox(key="series-store")
    store.select(store.options[-1]).run()
    assert_clean(at)
    assert charts(at) == 4
    assert at.selectbox(key="series-product").value is not None


def test_stockouts(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "stockouts")
    assert_clean(at)
    total = float(metrics(at)["Lost sales"].replace(",", ""))
    assert total > 0
    assert len(at.tabs) == 4
    assert charts(at) == 4
    assert len(at.dataframe) == 4
    assert len(at.get("download_button")) == 4
    city = at.multiselect(key="stockouts-city")
    city.select(city.options[0]).run()
    assert_clean(at)
    assert float(metrics(at)["Lost sales"].replace(",", "")) < total


def test_forecasts(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "forecasts")
    assert_clean(at)
    m = metrics(at)
    assert m["Series"] == str(CONFIG.series)
    assert float(m["Forecast, 7 days"].replace(",", "")) > 0
    assert m["Actual so far"] != "–"  # the eval split covers the forecast days
    assert charts(at) == 1
    assert len(at.dataframe) == 1
    assert len(at.get("download_button")) == 2
    category = at.multiselect(key="forecasts-cat")
    category.select(category.options[0]).run()
    assert_clean(at)
    assert int(metrics(at)["Series"]) < CONFIG.series


def test_models(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "models")
    assert_clean(at)
    m = metrics(at)
    assert m["Champion"].startswith("v")
    assert int(m["Registered versions"]) >= 1
    assert m["Compute saved"].endswith("%")  # from data/continual/history.parquet
    # acc per version, live acc over time (the second day scores the first's forecast),
    # continual refresh
    assert charts(at) == 3
    assert any(h.value == "Live accuracy" for h in at.subheader)
    # versions, latest live acc per version, metrics, params, refresh history
    assert len(at.dataframe) == 5
    live = at.dataframe[1].value
    assert list(live["version"]) == ["1"]
    assert 0 < live["live acc (7 days)"].iloc[0] <= 1
    # The override needs the confirmation box: without it nothing changes.
    at.text_input(key="models-reason").input("testing").run()
    at.form_submit_button[0].click().run()
    assert_clean(at)
    assert any("confirmation" in w.value for w in at.warning)
    assert metrics(at)["Champion"] == m["Champion"]


def test_models_promote_and_roll_back(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "models")
    before = metrics(at)["Champion"]
    versions = at.selectbox(key="models-version").options
    assert len(versions) >= 2, (versions, before)
    other = next(v for v in versions if f"v{v}" != before)
    at.selectbox(key="models-version").select(other)
    at.text_input(key="models-reason").input("promote by hand in a test")
    at.checkbox(key="models-confirm").check()
    at.form_submit_button[0].click().run()
    assert_clean(at)
    assert at.success, "no confirmation of the promotion"
    at.run()
    assert metrics(at)["Champion"] == f"v{other}"
    at.radio(key="models-action").set_value("Roll back to the previous champion")
    at.text_input(key="models-reason").input("undo the test promotion")
    at.checkbox(key="models-confirm").check()
    at.form_submit_button[0].click().run()
    assert_clean(at)
    at.run()
    assert metrics(at)["Champion"] == before


def test_with_an_admin_token_overrides_need_it(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("FRESHCAST_ADMIN_TOKEN", "s3cret")
    at = open_page(monkeypatch, home, "models")
    before = metrics(at)["Champion"]
    other = next(v for v in at.selectbox(key="models-version").options if f"v{v}" != before)

    def apply(token: str) -> None:
        at.selectbox(key="models-version").select(other)
        at.text_input(key="models-reason").input("token test")
        at.checkbox(key="models-confirm").check()
        at.text_input(key="models-token").input(token)
        at.form_submit_button[0].click().run()
        assert_clean(at)

    apply("wrong")
    assert any("admin token is wrong" in w.value for w in at.warning)
    at.run()
    assert metrics(at)["Champion"] == before
    apply("s3cret")
    assert at.success, "no confirmation of the promotion"
    at.run()
    assert metrics(at)["Champion"] == f"v{other}"
    # Put the champion back for the other tests of this module.
    at.radio(key="models-action").set_value("Roll back to the previous champion")
    apply("s3cret")
    at.run()
    assert metrics(at)["Champion"] == before


def test_jobs(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    at = open_page(monkeypatch, home, "jobs")
    assert_clean(at)
    m = metrics(at)
    assert m["Last run (daily)"].startswith("2024-")
    assert "Status" in m
    assert len(at.dataframe) == 3  # schedule, runs, all steps
    assert charts(at) == 1
    assert len(at.expander) + len(at.success) >= 1  # failures listed, or none to list


# -- an empty project -------------------------------------------------------------------------

EMPTY = {
    "overview": "No data yet",
    "series": "No data yet",
    "stockouts": "No data yet",
    "forecasts": "No data yet",
    "models": "No model is registered yet",
    "jobs": "No job has run yet",
}


@pytest.mark.parametrize("page", PAGES)
def test_empty_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str) -> None:
    at = open_page(monkeypatch, tmp_path, page)
    assert_clean(at)
    texts = [i.value for i in at.info]
    assert any(EMPTY[page] in t for t in texts), texts
    assert any("freshcast" in t for t in texts), "the empty state must say what to run"
    assert not (tmp_path / "mlruns").exists(), "a page must not create the MLflow store"


def test_data_without_job_outputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.data.simulate import SimulationConfig, write_simulation

    write_simulation(
        SimulationConfig(series=5, days=30, eval_days=0, seed=1), tmp_path / "data" / "raw"
    )
    for page in ("overview", "series", "stockouts", "forecasts"):
        at = open_page(monkeypatch, tmp_path, page)
        assert_clean(at)
        assert any("freshcast run" in i.value for i in at.info), page
