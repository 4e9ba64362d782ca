"""The promotion rule, decided on the candidate's and the champion's figures for the same rows."""

from __future__ import annotations

from typing import Any

from pipelines.jobs.gate import decide_promotion
from pipelines.settings import GateSettings

GATE = GateSettings(acc_tolerance=0.005, wpe_tolerance=0.02, wpe_limit=0.1)
PASSING = [{"check": "total", "ok": True, "value": 1.01, "detail": "total fine"}]


def _decide(
    acc: float,
    wpe: float,
    champion: dict[str, float] | None,
    checks: list[dict[str, Any]] = PASSING,
) -> Any:
    return decide_promotion(
        challenger={"acc": acc, "wpe": wpe}, champion=champion, checks=checks, gate=GATE
    )


def test_first_model_is_promoted_when_its_checks_pass() -> None:
    d = _decide(0.6, 0.01, None)
    assert d.promote
    assert "no champion" in d.reason
    assert d.warning is None


def test_first_model_past_the_cap_is_promoted_with_a_warning() -> None:
    d = _decide(0.5, 0.3, None)
    assert d.promote
    assert d.warning == "|wpe| on clean days 0.3000 exceeds the cap 0.1"


def test_first_model_that_fails_a_check_is_not_promoted() -> None:
    broken = [{"check": "finite", "ok": False, "value": 70.0, "detail": "70 NaN values"}]
    d = _decide(0.6, 0.0, None, broken)
    assert not d.promote
    assert d.failed_checks == ("finite",)
    assert "70 NaN values" in d.reason


def test_worse_candidate_is_kept_out_and_better_one_promoted() -> None:
    champion = {"acc": 0.62, "wpe": 0.05}
    assert not _decide(0.60, 0.05, champion).promote
    assert _decide(0.617, 0.05, champion).promote  # within the tolerance
    better = _decide(0.65, 0.05, champion)
    assert better.promote
    assert better.as_metrics()["gate/promote"] == 1.0
    assert better.as_metrics()["gate/champion_acc"] == 0.62


def test_bias_is_judged_against_the_champion_on_the_same_window() -> None:
    # A week where every model reads +0.2 on clean days: the absolute cap no longer blocks.
    same_week = _decide(0.55, 0.21, {"acc": 0.55, "wpe": 0.20})
    assert same_week.promote
    assert same_week.warning is not None  # past the cap: promoted, never silently
    # More biased than the champion by more than the tolerance: kept out, however accurate.
    biased = _decide(0.9, -0.30, {"acc": 0.6, "wpe": 0.05})
    assert not biased.promote
    assert "|wpe| 0.3000 > champion's 0.0500 + 0.02" in biased.reason


def test_a_failed_check_blocks_even_an_accurate_candidate() -> None:
    checks = [*PASSING, {"check": "rank", "ok": False, "value": 0.2, "detail": "rank 0.2"}]
    d = _decide(0.9, 0.0, {"acc": 0.6, "wpe": 0.0}, checks)
    assert not d.promote
    assert d.failed_checks == ("rank",)


def test_a_candidate_without_a_score_is_not_promoted() -> None:
    d = decide_promotion(challenger={}, champion=None, checks=PASSING, gate=GATE)
    assert not d.promote


def test_the_cap_judges_the_bias_against_recovered_demand_where_known() -> None:
    # Clean days alone read +0.20 (their selection), while the model is level on demand.
    level = decide_promotion(
        challenger={"acc": 0.6, "wpe": 0.2, "wpe_demand": 0.01},
        champion=None,
        checks=PASSING,
        gate=GATE,
    )
    assert level.promote
    assert level.warning is None
    biased = decide_promotion(
        challenger={"acc": 0.6, "wpe": 0.05, "wpe_demand": -0.15},
        champion=None,
        checks=PASSING,
        gate=GATE,
    )
    assert biased.warning == "|wpe| against recovered demand 0.1500 exceeds the cap 0.1"
