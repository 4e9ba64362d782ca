"""The promotion gate's rule, decided on figures from the same backtest window."""

from __future__ import annotations

from pipelines.jobs.gate import decide_promotion


def test_first_model_is_promoted_when_unbiased() -> None:
    d = decide_promotion(
        challenger_acc=0.6, challenger_wpe=0.01, champion_acc=None, tolerance=0.005, wpe_limit=0.1
    )
    assert d.promote
    assert "no champion" in d.reason


def test_worse_challenger_is_kept_out_and_better_one_promoted() -> None:
    worse = decide_promotion(
        challenger_acc=0.60, challenger_wpe=0.0, champion_acc=0.62, tolerance=0.005, wpe_limit=0.1
    )
    assert not worse.promote
    within = decide_promotion(
        challenger_acc=0.617, challenger_wpe=0.0, champion_acc=0.62, tolerance=0.005, wpe_limit=0.1
    )
    assert within.promote
    better = decide_promotion(
        challenger_acc=0.65, challenger_wpe=0.0, champion_acc=0.62, tolerance=0.005, wpe_limit=0.1
    )
    assert better.promote
    assert better.as_metrics()["gate/promote"] == 1.0


def test_biased_challenger_is_kept_out_even_if_accurate() -> None:
    d = decide_promotion(
        challenger_acc=0.9, challenger_wpe=-0.2, champion_acc=0.6, tolerance=0.005, wpe_limit=0.1
    )
    assert not d.promote
    assert "wpe" in d.reason


def test_first_model_is_promoted_even_if_biased_and_says_so() -> None:
    d = decide_promotion(
        challenger_acc=0.5, challenger_wpe=0.3, champion_acc=None, tolerance=0.005, wpe_limit=0.1
    )
    assert d.promote
    assert "|wpe| 0.3000 > limit 0.1" in d.reason
