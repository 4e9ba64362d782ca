"""``freshcast evaluate …``: score recovery, forecasts, or the continual protocol."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import DataDir, console, err_console, handle_errors, settings_for
from pipelines.errors import FreshcastError


@handle_errors
def evaluate_forecast_cmd(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="JSON file to write the metric rows to.")],
    folds: Annotated[int, typer.Option(min=1, help="Rolling origins, one week apart.")] = 1,
    series: Annotated[
        int | None, typer.Option(min=1, help="Score a random subset of this many series.")
    ] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated model names (default: all).")
    ] = "lgbm,neural,ensemble,ssa,seasonal_naive,moving_average",
    targets: Annotated[str, typer.Option(help="Comma-separated targets.")] = "recovered,censored",
    profile: Annotated[str, typer.Option(help="default, or smoke (tiny, for tests).")] = "default",
) -> None:
    """Score forecasters with the published protocol, on both targets, in one run."""
    from models.forecasters import MODEL_NAMES
    from pipelines.evaluation.forecast import run_evaluate_forecast

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    bad = [m for m in names if m not in MODEL_NAMES]
    if bad or not names:
        raise FreshcastError(f"unknown model(s) {bad}; choose from {', '.join(MODEL_NAMES)}")
    tgts = tuple(t.strip() for t in targets.split(",") if t.strip())
    if not tgts or any(t not in ("recovered", "censored") for t in tgts):
        raise FreshcastError("targets must be recovered and/or censored")
    path, rows = run_evaluate_forecast(
        data,
        out=out,
        models=names,
        targets=tgts,
        folds=folds,
        series=series,
        profile=profile,
    )
    for r in rows:
        if r["scope"] == "clean" and r.get("fold", "mean") == "mean":
            console.print(
                f"{r['method']:>15} {r['target']:>9}  acc {r.get('acc', float('nan')):.4f}  "
                f"wpe {r.get('wpe', float('nan')):+.4f}  cover {r.get('coverage_p10_p90', float('nan')):.3f}",
                highlight=False,
            )
    console.print(f"wrote {len(rows)} rows: {path}", highlight=False)


@handle_errors
def evaluate_recovery_cmd(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="JSON file to write the metric rows to.")],
    missing_rate: Annotated[
        list[float] | None,
        typer.Option(help="Share of business hours to hide; repeat for several (default 0.3)."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="all, or comma-separated from zero_fill, profile, lgbm, neural.")
    ] = "all",
    series: Annotated[
        int | None, typer.Option(min=1, help="Score a random subsample of this many series.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the masks and the subsample.")] = 0,
) -> None:
    """Masking protocol (uniform and demand-dependent masks), truth and decoupling scores."""
    from pipelines.evaluation.recovery import resolve_methods, run_evaluate_recovery

    rows = run_evaluate_recovery(
        data,
        out,
        methods=resolve_methods(method),
        rates=tuple(missing_rate or (0.3,)),
        series=series,
        seed=seed,
    )
    for row in rows:
        metrics = {k: row[k] for k in ("wape", "wpe", "hourly_wape", "decoupling") if k in row}
        shown = "  ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
        )
        rate = f" rate={row['missing_rate']}" if "missing_rate" in row else ""
        console.print(f"{row['method']:>10} {row['target']:>6} {row['scope']:<16}{rate}  {shown}")
    console.print(f"wrote {len(rows)} rows: {out}", highlight=False)


@handle_errors
def evaluate_continual_cmd(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="JSON file for the rows; the plot goes beside it.")],
    warm_days: Annotated[int, typer.Option(min=35, help="Days in the warm start.")] = 56,
    seeds: Annotated[int, typer.Option(min=1, help="Repeats with seeds 0..N-1.")] = 1,
    series: Annotated[
        int | None, typer.Option(min=1, help="Run on a random subset of this many series.")
    ] = None,
    models: Annotated[str, typer.Option(help="Comma-separated: lgbm, neural.")] = "lgbm,neural",
    steps: Annotated[
        int | None, typer.Option(min=1, help="At most this many daily steps (default: all).")
    ] = None,
    target: Annotated[
        str, typer.Option(help="censored, or recovered (runs stage 1).")
    ] = "censored",
    profile: Annotated[str, typer.Option(help="bench (default), default or smoke.")] = "bench",
) -> None:
    """Compare refresh strategies (A0 frozen .. A4 buffer-only, A3w) day by day; write JSON + PNG."""
    from models.constants import as_target
    from research.continual.protocol import ContinualConfig, evaluate_continual
    from research.continual.report import format_summary, log_to_mlflow, write_report

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if not set(names) <= {"lgbm", "neural"} or not names:
        raise FreshcastError(f"--models takes lgbm and/or neural, got {models!r}")
    if target not in ("censored", "recovered"):
        raise FreshcastError(f"--target is censored or recovered, got {target!r}")
    if profile not in ("bench", "default", "smoke"):
        raise FreshcastError(f"--profile is bench, default or smoke, got {profile!r}")
    config = ContinualConfig(
        warm_days=warm_days, steps=steps, target=as_target(target), profile=profile
    )
    rows = evaluate_continual(
        data,
        warm_days=warm_days,
        seeds=seeds,
        series=series,
        models=names,
        config=config,
        progress=err_console.print,
    )
    paths = write_report(rows, out)
    console.print(format_summary(rows))
    settings = settings_for(data)
    if os.environ.get("FRESHCAST_TRACKING_URI"):
        run_id = log_to_mlflow(rows, paths, settings.tracking_uri, settings.layout.artifacts)
        console.print(f"logged to MLflow run {run_id}")
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
