"""The gate can block: broken candidates are kept out while the champion stays and serves.

Each candidate is the day's real neural model (the train step's artifacts), broken the way
a refresh can break it: its level anchor set to zero, NaN or 1.6. The gate judges the files
the train step wrote, as in production; nothing in the gate is mocked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from models.forecasters.neural import NeuralForecaster
from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.jobs import daily as jobs
from pipelines.jobs.overrides import promote_version
from pipelines.jobs.runner import JobResult, Step, StepContext, run_job
from pipelines.jobs.tracking import finish_parent_run
from pipelines.serving import registry
from pipelines.settings import Settings, load_settings
from pipelines.training.fit import load_model, save_model

pytestmark = pytest.mark.slow
SIM = SimulationConfig(series=120, days=49, eval_days=7, seed=11)
FIRST_DAY, NEXT_DAY = date(2024, 5, 14), date(2024, 5, 15)


def _settings(home: Path, data: Path) -> Settings:
    return load_settings(home=home, data_dir=data, profile="smoke", forecast_model="neural")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_simulation(SIM, out)
    return out


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """A home whose daily job ran once: v1, a neural model, is champion."""
    home = tmp_path_factory.mktemp("champion")
    first = jobs.daily_job(_settings(home, data), business_date=FIRST_DAY)
    assert first.records["gate"]["promote"]
    return home


def _next_day_with(
    champion_home: Path,
    data: Path,
    tmp_path: Path,
    level: float | None,
    *,
    after_register: Callable[[StepContext], dict[str, str]] | None = None,
) -> tuple[JobResult, Settings]:
    """Run the next day's job on a copy of the home; with ``level``, the train step's
    candidate (both its lagged and its rolled-forward model) gets that level anchor;
    ``after_register`` runs between register and gate."""
    home = tmp_path / "home"
    shutil.copytree(champion_home, home)
    settings = _settings(home, data)

    def break_candidate(ctx: StepContext) -> dict[str, str]:
        for path in (ctx.records["train"]["lagged_path"], ctx.records["train"]["path"]):
            model = load_model(Path(path))
            assert isinstance(model, NeuralForecaster)
            model.level_ = level if level is not None else model.level_
            save_model(model, Path(path))
        return {"level": str(level)}

    steps = jobs.build_steps(settings.data_dir, NEXT_DAY, retrain=False)
    at = [s.name for s in steps].index("train") + 1
    steps.insert(at, Step("break", break_candidate))
    if after_register is not None:
        at = [s.name for s in steps].index("register") + 1
        steps.insert(at, Step("meanwhile", after_register))
    steps.append(Step("finish", finish_parent_run))
    registry.configure(settings.tracking_uri)
    result = run_job(settings, job="daily", business_date=NEXT_DAY.isoformat(), steps=steps)
    return result, settings


def _kept_out(result: JobResult) -> dict[str, object]:
    gate = result.records["gate"]
    assert not gate["promote"], gate["reason"]
    assert str(registry.alias_version(registry.CHAMPION).version) == "1"  # type: ignore[union-attr]
    assert str(registry.alias_version(registry.CHALLENGER).version) == "2"  # type: ignore[union-attr]
    # The champion still serves: today's forecast is v1's.
    assert result.records["forecast"]["champion_version"] == "1"
    decision = gate["decision"]
    assert isinstance(decision, dict)
    return decision


CASES: dict[str, tuple[float, Callable[[dict[str, object]], bool]]] = {
    # Forecasts collapsed to zero: the total is far off the champion's.
    "zeros": (0.0, lambda d: "total" in d["failed_checks"]),  # type: ignore[operator]
    # A NaN level: NaN forecasts, on the window and for the coming week.
    "nan": (float("nan"), lambda d: "finite" in d["failed_checks"]),  # type: ignore[operator]
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_candidate_is_kept_out(
    case: str, champion_home: Path, data: Path, tmp_path: Path
) -> None:
    level, failed_as_expected = CASES[case]
    result, _ = _next_day_with(champion_home, data, tmp_path, level)
    decision = _kept_out(result)
    assert failed_as_expected(decision), decision


def test_a_candidate_more_biased_than_the_champion_is_kept_out(
    champion_home: Path, data: Path, tmp_path: Path
) -> None:
    result, settings = _next_day_with(champion_home, data, tmp_path, 1.6)
    decision = _kept_out(result)
    ev = result.records["evaluate"]
    # The bias is judged on the same rows as the champion's, not against an absolute cap.
    assert (
        abs(ev["metrics"]["wpe"]) > abs(ev["champion_metrics"]["wpe"]) + settings.gate.wpe_tolerance
    )
    assert decision["challenger_wpe"] == ev["metrics"]["wpe"]


def test_a_sound_candidate_is_judged_on_its_own_scores_and_promoted(
    champion_home: Path, data: Path, tmp_path: Path
) -> None:
    result, _ = _next_day_with(champion_home, data, tmp_path, None)
    ev = result.records["evaluate"]
    assert result.records["train"]["mode"] == "refresh"
    # The two sides are different artifacts, scored on the same rows: not one number twice.
    assert ev["metrics"]["acc"] != ev["champion_metrics"]["acc"]
    assert ev["metrics"]["rows"] == ev["champion_metrics"]["rows"]
    assert all(c["ok"] for c in ev["sanity"]), ev["sanity"]
    assert result.records["gate"]["promote"], result.records["gate"]["reason"]
    assert str(registry.alias_version(registry.CHAMPION).version) == "2"  # type: ignore[union-attr]


def test_a_promotion_by_hand_during_the_job_stands(
    champion_home: Path, data: Path, tmp_path: Path
) -> None:
    """A person promotes while the job runs: the gate, which judged the candidate against
    the champion before, does not overwrite their choice."""

    def person_promotes(ctx: StepContext) -> dict[str, str]:
        promote_version(ctx.settings, 2, "test: by hand, mid-job")
        return {}

    result, _ = _next_day_with(champion_home, data, tmp_path, None, after_register=person_promotes)
    gate = result.records["gate"]
    assert not gate["promote"]
    assert "the champion changed to v2 while the job ran" in gate["reason"]
    assert str(registry.alias_version(registry.CHAMPION).version) == "2"  # type: ignore[union-attr]
