"""Rollback on live evidence: the previous champion forecasts in the shadow, and a champion
that does worse live on the same days is rolled back when the settings say so."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import mlflow
import polars as pl
import pytest

from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.jobs import daily as jobs
from pipelines.jobs.overrides import promote_version
from pipelines.jobs.runner import JobResult, Step, run_job
from pipelines.jobs.tracking import finish_parent_run
from pipelines.serving import ledger, registry
from pipelines.settings import GateSettings, Settings, load_settings

pytestmark = pytest.mark.slow
SIM = SimulationConfig(series=60, days=49, eval_days=7, seed=3)
DAYS = [date(2024, 5, 12), date(2024, 5, 13), date(2024, 5, 14), date(2024, 5, 15)]


def _settings(home: Path, data: Path, **overrides: object) -> Settings:
    return load_settings(home=home, data_dir=data, profile="smoke", **overrides)


def _run(settings: Settings, day: date, names: set[str]) -> JobResult:
    """The daily job's own steps, only those named (no new model: the champion is fixed)."""
    steps = [s for s in jobs.build_steps(settings.data_dir, day, retrain=False) if s.name in names]
    steps.append(Step("finish", finish_parent_run))
    return run_job(settings, job="daily", business_date=day.isoformat(), steps=steps)


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """v1 (LightGBM) was champion; v2, a seasonal-naive model, was promoted by hand and has
    served a day, with v1's shadow forecast of the same days beside it in the ledger."""
    data = tmp_path_factory.mktemp("data")
    write_simulation(SIM, data)
    home = tmp_path_factory.mktemp("home")
    settings = _settings(home, data)
    jobs.daily_job(settings, business_date=DAYS[0])
    jobs.daily_job(_settings(home, data, forecast_model="seasonal_naive"), business_date=DAYS[1])
    promote_version(settings, 2, "test: a weaker model by hand")
    served = _run(settings, DAYS[2], {"ingest", "recover", "live", "forecast"})
    assert served.records["forecast"]["champion_version"] == "2"
    assert served.records["forecast"]["shadow_version"] == "1"
    return home, data


def test_the_previous_champion_forecasts_in_the_shadow(shadowed: tuple[Path, Path]) -> None:
    home, data = shadowed
    book = ledger.read_ledger(_settings(home, data).layout.ledger)
    made = book.filter(pl.col("made_on") == DAYS[2])
    roles = made.group_by("version", "role").len().sort("version")
    assert roles.select("version", "role").rows() == [("1", "shadow"), ("2", "served")]
    # The same rows: 60 series × 7 days each.
    assert roles["len"].to_list() == [SIM.series * 7, SIM.series * 7]


@pytest.mark.parametrize("policy", ["alert", "rollback"])
def test_a_champion_worse_live_than_its_predecessor(
    policy: str, shadowed: tuple[Path, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(shadowed[0], home)
    settings = _settings(
        home, shadowed[1], gate=GateSettings(on_live_drop=policy, live_margin=0.01)
    )
    result = _run(settings, DAYS[3], {"ingest", "recover", "live"})
    registry.configure(settings.tracking_uri)
    champion = registry.alias_version(registry.CHAMPION)
    assert champion is not None
    live = result.records["live"]
    # The evidence: both versions' live acc on the day v2 served (its forecast of DAYS[3]).
    assert live["live_acc"]["2"] < live["live_acc"]["1"] - 0.01
    if policy == "alert":
        assert live["rollback"] is None
        assert str(champion.version) == "2"
        return
    assert str(champion.version) == "1"
    assert "rolled back to v1" in live["rollback"]
    rolled = registry.get_version(2)
    assert rolled is not None
    assert rolled.tags["live/rolled_back"] == DAYS[3].isoformat()
    assert "rolled back" in rolled.tags["live/alert"]
    # Logged like a manual rollback, in the overrides experiment.
    runs = mlflow.search_runs(experiment_names=["overrides"], output_format="list")
    rollbacks = [r for r in runs if r.data.tags["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert rollbacks[0].data.tags["reason"].startswith("live evidence")
