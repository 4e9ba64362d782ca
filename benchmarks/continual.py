"""Continual refresh on real data: every arm, accuracy against cost, and the issue's targets.

Usage::

    .venv/bin/python benchmarks/continual.py --series 2000 --steps 14
    FRESHCAST_REAL_DATA=../shared/data/frn50k .venv/bin/python benchmarks/continual.py

Writes ``benchmarks/results/continual.json`` (step and summary rows) and ``continual.png``
(acc per step, all arms), and prints the summary table, the frontier and the target checks.
Costs are measured on this machine in this run, as ratios to A1 at the same step.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

# LightGBM and torch spin-wait in OpenMP barriers by default; on a shared, oversubscribed
# machine that made a 2-thread fit ~10x slower than 1 thread. Passive waiting fixes it and
# must be set before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS_DIR, format_table
from models.forecasters.update import LGBM_REFRESH, NEURAL_REFRESH, UpdateConfig
from pipelines.errors import FreshcastError
from research.continual.protocol import ARMS, ContinualConfig, evaluate_continual
from research.continual.report import TARGETS, merge_runs, summary_table, write_report

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "frn50k"


def _lgbm(**kwargs: Any) -> UpdateConfig:
    """A LightGBM continue setting with A3's tree shape and row share."""
    return UpdateConfig(num_leaves=15, min_child_samples=200, row_fraction=0.35, **kwargs)


# Extra settings for the frontier: cheaper and dearer updates than A3's default
# (models.forecasters.update.LGBM_REFRESH: 10 trees at 0.04, 1 replayed window per new one).
VARIANTS = (
    # The previous default, kept to compare the two settings within one run.
    ("k20r2", "lgbm", _lgbm(trees=20, learning_rate=0.02, replay_ratio=2.0)),
    ("k5r1", "lgbm", _lgbm(trees=5, learning_rate=0.08, replay_ratio=1.0)),
    ("k40r4", "lgbm", _lgbm(trees=40, learning_rate=0.02, replay_ratio=4.0)),
    (
        "refit",
        "lgbm",
        UpdateConfig(strategy="refit", refit_decay=0.97, row_fraction=0.35, replay_ratio=2.0),
    ),
    # The share of stacked rows an update samples: the previous default (0.35) and 0.2.
    ("f35", "lgbm", replace(LGBM_REFRESH, row_fraction=0.35)),
    ("f20", "lgbm", replace(LGBM_REFRESH, row_fraction=0.2)),
    ("f20r2", "lgbm", replace(LGBM_REFRESH, row_fraction=0.2, replay_ratio=2.0)),
    ("e1r1", "neural", UpdateConfig(epochs=1, fine_tune_lr=5e-4, replay_ratio=1.0)),
    # Replayed windows trained toward their sales (A3 trains them toward its own
    # pre-update forecasts, DER), with 2 (the previous default), 1 or 0.5 per new one.
    ("sales", "neural", replace(NEURAL_REFRESH, replay_targets="actual")),
    ("r1", "neural", replace(NEURAL_REFRESH, replay_ratio=1.0, replay_targets="actual")),
    ("r05", "neural", replace(NEURAL_REFRESH, replay_ratio=0.5, replay_targets="actual")),
    ("e2lr1e3r4", "neural", UpdateConfig(epochs=2, fine_tune_lr=1e-3, replay_ratio=4.0)),
    (
        "sp",
        "neural",
        UpdateConfig(epochs=2, fine_tune_lr=5e-4, shrink=0.9, perturb=1e-3, replay_ratio=2.0),
    ),
)


def frontier(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, arms by cost (work ratio); ``pareto`` marks arms no cheaper arm beats."""
    out = []
    for model in sorted({r["model"] for r in summary}):
        rows = sorted(
            (r for r in summary if r["model"] == model),
            key=lambda r: (r["work_ratio"], r["wape_ratio"]),
        )
        best = float("inf")
        for r in rows:
            pareto = r["wape_ratio"] < best
            best = min(best, r["wape_ratio"])
            out.append(
                {
                    "method": r["method"],
                    "work_ratio": r["work_ratio"],
                    "seconds_ratio": r["seconds_ratio"],
                    "cpu_ratio": r["cpu_ratio"],
                    "wape_ratio": r["wape_ratio"],
                    "pareto": pareto,
                }
            )
    return out


def target_checks(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for each model's A3, measured."""
    out = []
    for r in summary:
        if r["arm"] != "A3":
            continue
        row: dict[str, Any] = {"model": r["model"]}
        for key, bound in TARGETS.items():
            row[key] = f"{r[key]:.3f} (<= {bound}) {'ok' if r[f'meets_{key}'] else 'MISSED'}"
        row["abs_wpe_diff (two-sided)"] = f"{r['abs_wpe_diff']:.3f}"
        for key in ("forgetting_vs_a2", "stability_vs_a2"):
            if f"meets_{key}" in r:
                row[key] = "ok" if r[f"meets_{key}"] else "MISSED"
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FRESHCAST_REAL_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--series", type=int, default=2000, help="random subset (0 = all 50k)")
    parser.add_argument("--steps", type=int, default=None, help="at most this many daily steps")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here")
    parser.add_argument("--warm-days", type=int, default=56)
    parser.add_argument("--models", default="lgbm,neural")
    parser.add_argument(
        "--arms",
        default=None,
        help="a subset of the arms (default: all; A0 only with --no-reference); A1 always "
        "runs unless --no-reference",
    )
    parser.add_argument("--profile", default="bench", choices=["bench", "default", "smoke"])
    parser.add_argument("--target", default="censored", choices=["censored", "recovered"])
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the frontier's extra settings"
    )
    parser.add_argument("--variants", default=None, help="only these extra settings (a,b)")
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="add the neural warm-start arms WS0, WS, WS:sp (the warm-start penalty)",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip A1: extra arms to --merge with a run that has A1 on the same seeds",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "continual.json")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="run nothing: merge these result files of different seeds into --out",
    )
    args = parser.parse_args()
    if args.merge:
        runs = [_read_run(f) for f in args.merge]
        # Each run's load averages, kept on the merged summary rows (a run without A1 has
        # no summary: only each step's own 1-minute load is kept).
        loads = [
            [first.get("loadavg_start"), first.get("loadavg_end")]
            for first in (next((r for r in run if r["scope"] == "summary"), {}) for run in runs)
        ]
        try:
            merged = merge_runs(runs)
        except ValueError as exc:
            _fail(f"cannot merge {', '.join(map(str, args.merge))}: {exc}")
        rows = [{**r, "loadavg_runs": loads} if r["scope"] == "summary" else r for r in merged]
        report(rows, write_report(rows, args.out), f"merged from {len(runs)} runs")
        return

    config = ContinualConfig(
        warm_days=args.warm_days,
        steps=args.steps,
        profile=args.profile,
        target=args.target,
        warm_start=args.warm_start,
        reference=not args.no_reference,
        variants=()
        if args.no_variants
        else tuple(
            v for v in VARIANTS if args.variants is None or v[0] in args.variants.split(",")
        ),
    )
    started = time.perf_counter()
    load_start = os.getloadavg()
    # A run without A1 adds extra arms to seeds another run has: by default only A0, which
    # the merge needs to prove the same warm fit.
    arms = tuple(args.arms.split(",") if args.arms else (("A0",) if args.no_reference else ARMS))
    if unknown := sorted(set(arms) - set(ARMS)):
        _fail(f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    if args.no_reference and "A3w" in arms:
        _fail("--arms A3w takes over A1's weekly fit, so it cannot run with --no-reference")
    try:
        rows = evaluate_continual(
            args.data,
            warm_days=args.warm_days,
            seeds=args.seeds,
            first_seed=args.first_seed,
            series=args.series or None,
            models=tuple(args.models.split(",")),
            arms=arms,
            config=config,
            progress=lambda s: print(s, flush=True),
        )
    except FreshcastError as exc:  # bad data: the message names the file (and column, row)
        _fail(str(exc))
    # Other jobs share the machine: the load averages (1, 5, 15 min) around the run.
    load = {"loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())}
    rows = [{**r, **load} if r["scope"] == "summary" else r for r in rows]
    report(
        rows,
        write_report(rows, args.out),
        f"{time.perf_counter() - started:.0f}s, load {load_start[0]:.1f} -> "
        f"{load['loadavg_end'][0]:.1f}",
    )


def _fail(message: str) -> NoReturn:
    """Exit 2 (invalid input, as the CLI does) with the message and no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _read_run(path: Path) -> list[dict[str, Any]]:
    """One result file's rows, or exit 2 with a message naming the file (no traceback)."""
    try:
        rows = json.loads(path.read_text())
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and "scope" in r for r in rows
        ):
            raise ValueError("not a list of result rows with a 'scope'")
    except (OSError, ValueError) as exc:
        _fail(f"{path}: cannot merge it ({exc})")
    return rows


def report(rows: list[dict[str, Any]], paths: dict[str, Path], how: str) -> None:
    """Print the summary table, the frontier and the target checks of a written report."""
    summary = [r for r in rows if r["scope"] == "summary"]
    if not summary:
        print(f"wrote {paths['json']}: no run has A1, so no summary; merge a run that has it")
        return
    first = summary[0]
    print(
        f"\ncontinual refresh: {first['series']:,} series, {first['steps']} steps, "
        f"{max(r['seeds'] for r in summary)} seed(s), warm {first['warm_days']} days, "
        f"profile {first['profile']}, {how}\n"
    )
    print(format_table(summary_table(rows)))
    print("\nfrontier (cost ratio to A1 vs WAPE ratio to A1):")
    print(format_table(frontier(summary)))
    print("\nA3 against the issue's targets:")
    print(format_table(target_checks(summary)))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    main()
