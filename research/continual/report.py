"""Reporting for the continual protocol: summary rows, the acc-per-step plot, MLflow.

Summary rows compare each arm with A1 (full daily retrain) *of the same model, seed and
step*, so machine load and data drift cancel out of the ratios.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.data.io import atomic_path, write_json

# The targets for A3, as (summary key, comparison, bound).
TARGETS = {
    "wape_ratio": 1.02,  # A3 mean WAPE <= 1.02 x A1
    "wape_ratio_worst_step": 1.05,  # every step <= 1.05 x A1
    # |wpe| within 1 point of A1's, read one-sided: no more than 1 point *more* biased.
    # (abs_wpe_diff, the two-sided reading, is reported beside it.)
    "abs_wpe_excess": 0.01,
    "work_ratio": 0.1,  # compute per update <= 0.1 x A1
    "seconds_ratio": 0.1,  # wall time per update <= 0.1 x A1
}


# The A1 means each arm's ratios are taken against.
A1_KEYS = ("wape", "wpe", "seconds", "cpu_seconds", "work")


def summarise(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``scope="summary"`` row per model and arm.

    Reads the step rows' acc, wpe, wape, forgetting, stability_gap, seconds, cpu_seconds
    (absent in older results: its ratio is then NaN), work, peak_mb.
    Adds means over steps (then seeds), worst-case forgetting and stability gap per seed
    (then the seed mean), ratios to A1, and for A3 the issue's target checks.
    """
    steps = pl.DataFrame([r for r in rows if r["scope"] == "step"], infer_schema_length=None)
    if steps.height == 0 or "A1" not in steps["arm"]:  # no reference to compare with
        return []
    if "cpu_seconds" not in steps.columns:
        steps = steps.with_columns(pl.lit(None, pl.Float64).alias("cpu_seconds"))
    ref = steps.filter(pl.col("arm") == "A1").select(
        "model", "seed", "step", pl.col("wape").alias("a1_wape"), pl.col("wpe").alias("a1_wpe")
    )
    steps = steps.join(ref, on=["model", "seed", "step"], how="left").with_columns(
        (pl.col("wape") / pl.col("a1_wape")).alias("step_ratio")
    )
    per_seed = steps.group_by("model", "arm", "seed").agg(
        pl.col("acc", "wpe", "wape", "seconds", "cpu_seconds", "work").mean(),
        pl.col("a1_wape", "a1_wpe").mean(),
        pl.col("step_ratio").max().alias("wape_ratio_worst_step"),
        pl.col("forgetting").max(),
        pl.col("stability_gap").max(),
        pl.col("peak_mb").max(),
        pl.len().alias("steps"),
    )
    # Each arm is compared with A1 over the seeds that arm ran (runs may differ in arms).
    a1_seed = per_seed.filter(pl.col("arm") == "A1").select(
        "model", "seed", *(pl.col(k).alias(f"a1_{k}") for k in A1_KEYS)
    )
    agg = (
        per_seed.drop("a1_wape", "a1_wpe")
        .join(a1_seed, on=["model", "seed"], how="left")
        .group_by("model", "arm")
        .agg(pl.exclude("seed").mean(), pl.len().alias("seeds"))
        .sort("model", "arm")
    )
    out: list[dict[str, Any]] = []
    for r in agg.iter_rows(named=True):
        a1 = {k: r[f"a1_{k}"] for k in A1_KEYS}
        row = {
            "task": "continual",
            "method": f"{r['model']}/{r['arm']}",
            "model": r["model"],
            "arm": r["arm"],
            "scope": "summary",
            **meta,
            "steps": int(r["steps"]),
            "seeds": int(r["seeds"]),
            "acc": r["acc"],
            "wpe": r["wpe"],
            "wape": r["wape"],
            "wape_ratio": r["wape"] / a1["wape"],
            "wape_ratio_worst_step": r["wape_ratio_worst_step"],
            "abs_wpe_diff": abs(abs(r["wpe"]) - abs(a1["wpe"])),
            "abs_wpe_excess": abs(r["wpe"]) - abs(a1["wpe"]),
            "forgetting": r["forgetting"],
            "stability_gap": r["stability_gap"],
            "seconds": r["seconds"],
            "cpu_seconds": r["cpu_seconds"],
            "work": r["work"],
            "peak_mb": r["peak_mb"],
            "seconds_ratio": r["seconds"] / a1["seconds"] if a1["seconds"] else math.nan,
            "cpu_ratio": r["cpu_seconds"] / a1["cpu_seconds"] if a1["cpu_seconds"] else math.nan,
            "work_ratio": r["work"] / a1["work"] if a1["work"] else math.nan,
        }
        out.append(row)
    _add_target_checks(out)
    return out


def merge_runs(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One report from protocol runs of different seeds or arms (e.g. one process per seed).

    Keeps every warm and step row and recomputes the summary over all of them. The runs
    must share series, target, warm days, profile and each model's (step, origin) days. No
    arm of a model and seed may repeat, except A0: a run without the reference (a frontier
    run of extra arms, compared with another run's A1) repeats the seed's frozen model, and
    its A0 scores must equal the other run's (to 1e-9), which shows that both started from
    the same warm fit. The repeat is kept once.
    """
    keys = ("series", "target", "warm_days", "profile")
    metas = {tuple(r[k] for k in keys) for run in runs for r in run if r["scope"] == "step"}
    if len(metas) != 1:
        raise ValueError(f"runs differ in {keys}: {sorted(metas)}")
    # Means over steps are only comparable across seeds on the same days.
    days = {
        frozenset((r["model"], r["step"], str(r["origin"])) for r in run if r["scope"] == "step")
        for run in runs
    }
    models = {r["model"] for run in runs for r in run if r["scope"] == "step"}
    for model in models:
        per_run = {frozenset(d for d in run_days if d[0] == model) for run_days in days}
        per_run.discard(frozenset())
        if len(per_run) > 1:
            raise ValueError(f"runs differ in the steps or origins of {model}")
    steps = [[r for r in run if r["scope"] == "step"] for run in runs]
    holders: dict[tuple[str, int], list[int]] = {}
    for i, run_steps in enumerate(steps):
        for model, seed in {(r["model"], r["seed"]) for r in run_steps}:
            holders.setdefault((model, seed), []).append(i)
    for (model, seed), idx in holders.items():
        arms: dict[str, int] = {}
        for i in idx:
            for arm in {r["arm"] for r in steps[i] if (r["model"], r["seed"]) == (model, seed)}:
                if arm != "A0" and arm in arms:
                    raise ValueError(f"{model} seed {seed} arm {arm} is in run {arms[arm]} and {i}")
                arms.setdefault(arm, i)
        if len(idx) > 1:
            _check_same_warm_fit(model, seed, [(i, steps[i]) for i in idx])
    if any(r["arm"] == "A1" for run_steps in steps for r in run_steps):
        # Every arm's ratios are to A1 of its own seed: a seed without one has nothing to
        # compare with (a mean over seeds would silently divide by other seeds' A1).
        has_a1 = {(r["model"], r["seed"]) for run in steps for r in run if r["arm"] == "A1"}
        missing = sorted(set(holders) - has_a1)
        if missing:
            raise ValueError(f"no run has A1 for {', '.join(f'{m} seed {s}' for m, s in missing)}")
    rows = []
    for (model, seed), idx in holders.items():
        first = idx[0]
        for i in idx:
            rows += [
                r
                for r in runs[i]
                if (r.get("model"), r.get("seed")) == (model, seed)
                and (
                    (r["scope"] == "step" and (r["arm"] != "A0" or i == first))
                    or (r["scope"] == "warm" and i == first)
                )
            ]
    return rows + summarise(rows, dict(zip(keys, metas.pop(), strict=True)))


def _check_same_warm_fit(
    model: str, seed: int, runs: list[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Runs that share a model's seed must hold its frozen arm A0 on every step, with equal
    scores: the proof that their arms started from the same warm fit."""
    scores = {}
    for i, run_steps in runs:
        a0 = {
            r["step"]: tuple(r[k] for k in ("acc", "wpe", "wape"))
            for r in run_steps
            if (r["model"], r["seed"], r["arm"]) == (model, seed, "A0")
        }
        every = {r["step"] for r in run_steps if (r["model"], r["seed"]) == (model, seed)}
        if set(a0) != every:
            raise ValueError(
                f"{model} seed {seed} is in several runs, but run {i} lacks A0 on some steps: "
                "nothing shows they share a warm fit"
            )
        scores[i] = a0
    (i0, base), *others = scores.items()
    for i, a0 in others:
        for step, score in a0.items():
            # Equal up to the last bits a parallel sum may reorder; another warm fit moves
            # them in the third decimal.
            if not all(_same(a, b) for a, b in zip(score, base[step], strict=True)):
                raise ValueError(
                    f"{model} seed {seed} step {step}: A0 scores {score} in run {i} but "
                    f"{base[step]} in run {i0}: not the same warm fit"
                )


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _add_target_checks(summary: list[dict[str, Any]]) -> None:
    """Mark on each A3 row which of the issue's targets it meets (measured, not assumed)."""
    for row in summary:
        if row["arm"] != "A3":
            continue
        for key, bound in TARGETS.items():
            row[f"meets_{key}"] = bool(row[key] <= bound)
        a2 = next((r for r in summary if r["model"] == row["model"] and r["arm"] == "A2"), None)
        if a2 is not None:
            # "at least 5 % lower (relative)": forgetting is a rise, so compare magnitudes.
            # Without probes (or after a JSON round trip of NaN) there is nothing to compare.
            if _is_number(row["forgetting"]) and _is_number(a2["forgetting"]):
                row["meets_forgetting_vs_a2"] = (
                    bool(row["forgetting"] <= 0.95 * a2["forgetting"])
                    if a2["forgetting"] > 0
                    else bool(row["forgetting"] <= 0)
                )
            if _is_number(row["stability_gap"]) and _is_number(a2["stability_gap"]):
                row["meets_stability_vs_a2"] = (
                    bool(row["stability_gap"] < a2["stability_gap"])
                    if a2["stability_gap"] > 0
                    else bool(row["stability_gap"] <= 0)
                )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not math.isnan(x)


def plot_acc_per_step(rows: list[dict[str, Any]], path: Path) -> Path:
    """A PNG of acc per step for every arm, one panel per model (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = pl.DataFrame([r for r in rows if r["scope"] == "step"], infer_schema_length=None)
    models = steps["model"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = (
            steps.filter(pl.col("model") == model)
            .group_by("arm", "step")
            .agg(pl.col("acc").mean())
            .sort("step")
        )
        for arm in sorted(sub["arm"].unique().to_list()):
            line = sub.filter(pl.col("arm") == arm)
            ax.plot(
                line["step"],
                line["acc"],
                marker=".",
                label=arm,
                linewidth=2.2 if arm in ("A1", "A3") else 1,
            )
        ax.set_title(f"{model}: acc per step (published protocol)")
        ax.set_xlabel("step (days after warm start)")
        ax.set_ylabel("acc")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_report(rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """Write the JSON rows and the plot beside them (``<out stem>.png``)."""
    clean = [{k: _plain(v) for k, v in r.items()} for r in rows]
    paths = {"json": write_json(clean, out)}
    if any(r["scope"] == "step" for r in rows):
        paths["plot"] = plot_acc_per_step(rows, out.with_suffix(".png"))
    return paths


def _plain(v: Any) -> Any:
    if isinstance(v, float | np.floating) and not math.isfinite(float(v)):
        return None
    return v.isoformat() if hasattr(v, "isoformat") else v


def log_to_mlflow(
    rows: list[dict[str, Any]], paths: dict[str, Path], tracking_uri: str, artifact_root: Path
) -> str:
    """Log step metrics (``continual/<model>/<arm>/<metric>`` by step), summaries and files."""
    import mlflow

    from pipelines.serving import registry

    registry.configure(tracking_uri)
    experiment = registry.ensure_experiment("continual", artifact_root)
    with mlflow.start_run(experiment_id=experiment, run_name="evaluate continual") as run:
        first = rows[0]
        mlflow.log_params({k: first.get(k) for k in ("series", "target", "warm_days", "profile")})
        for r in rows:
            if r["scope"] != "step" or r["seed"] != 0:
                continue
            base = f"continual/{r['model']}/{r['arm']}"
            mlflow.log_metrics(
                {
                    f"{base}/{k}": float(r[k])
                    for k in ("acc", "wpe", "wape", "forgetting", "stability_gap", "seconds")
                    if r.get(k) is not None and math.isfinite(float(r[k]))
                },
                step=int(r["step"]),
            )
        for r in rows:
            if r["scope"] == "summary":
                mlflow.log_metrics(
                    {
                        f"summary/{r['model']}/{r['arm']}/{k}": float(v)
                        for k, v in r.items()
                        if isinstance(v, float) and math.isfinite(v)
                    }
                )
        for path in paths.values():
            mlflow.log_artifact(str(path))
        return run.info.run_id


SUMMARY_COLUMNS = (
    "method",
    "series",
    "steps",
    "acc",
    "wpe",
    "wape",
    "wape_ratio",
    "wape_ratio_worst_step",
    "forgetting",
    "stability_gap",
    "seconds",
    "seconds_ratio",
    "cpu_ratio",
    "work_ratio",
    "peak_mb",
)


def summary_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary rows cut to the columns of the frontier table (accuracy vs cost per arm)."""
    return [{k: r.get(k) for k in SUMMARY_COLUMNS} for r in rows if r["scope"] == "summary"]


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summary_table`."""
    table = summary_table(rows)
    if not table:
        return "(no summary rows)"
    cells = [[_cell(r[k]) for k in SUMMARY_COLUMNS] for r in table]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(SUMMARY_COLUMNS)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(SUMMARY_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)) for c in cells]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)
