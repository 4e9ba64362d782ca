"""The `freshcast` command line (Typer).

Every command turns a :class:`~pipelines.errors.FreshcastError` into a readable message
and a non-zero exit code; users never see a traceback (set FRESHCAST_DEBUG=1 to see one).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipelines.errors import FreshcastError

app = typer.Typer(
    name="freshcast",
    help="Censored-demand recovery and 7-day demand forecasting for fresh retail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
evaluate_app = typer.Typer(
    help="Score recovery, forecasts or continual refresh.", no_args_is_help=True
)
app.add_typer(evaluate_app, name="evaluate")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print user errors without a traceback and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FreshcastError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("FRESHCAST_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
                "(set FRESHCAST_DEBUG=1 for a traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


DataDir = Annotated[Path, typer.Option("--data", help="Dataset folder in the hub layout.")]


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write train/eval/truth parquet into.")],
    series: Annotated[
        int, typer.Option(min=1, max=50_000, help="Number of store×product series.")
    ] = 1000,
    days: Annotated[int, typer.Option(min=1, help="Train days.")] = 90,
    eval_days: Annotated[int, typer.Option(min=0, help="Evaluation days after train.")] = 7,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives identical files.")
    ] = 0,
) -> None:
    """Write a simulated dataset in the hub schema, with the true latent demand beside it."""
    from pipelines.data.simulate import SimulationConfig, write_simulation

    paths = write_simulation(
        SimulationConfig(series=series, days=days, eval_days=eval_days, seed=seed), out
    )
    for name, path in paths.items():
        console.print(f"wrote {name}: {path}")


@app.command()
@handle_errors
def validate(
    data: Annotated[Path, typer.Argument(help="Dataset folder in the hub layout.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Row-level invariant breaks also fail.")] = False,
) -> None:
    """Check a dataset against the data contract. Exit 0 when valid, 2 otherwise."""
    from pipelines.data.validate import render_report, validate_dataset

    report = validate_dataset(data, strict=strict)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(render_report(report))
    if not report.ok:
        raise typer.Exit(2)


@app.command()
@handle_errors
def pull(
    out: Annotated[Path, typer.Option(help="Folder to download train/eval parquet into.")],
    repo_id: Annotated[
        str, typer.Option(help="The dataset's hub id.")
    ] = "Dingdong-Inc/FreshRetailNet-50K",
) -> None:
    """Download the dataset's parquet files from its hub page (needs the internet)."""
    from pipelines.data.pull import pull_dataset

    for path in pull_dataset(out, repo_id=repo_id):
        console.print(f"wrote {path}")


def _settings(data: Path | None = None):
    from pipelines.settings import load_settings

    settings = load_settings()
    return settings if data is None else settings.model_copy(update={"data_dir": data})


@app.command()
@handle_errors
def run(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset folder; default FRESHCAST_DATA or data/raw."),
    ] = None,
    day: Annotated[
        datetime | None,
        typer.Option(
            "--date", formats=["%Y-%m-%d"], help="Business date; default: the last train day."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Run a finished date again from scratch.")] = False,
    retrain: Annotated[bool, typer.Option(help="Full retrain instead of a refresh.")] = False,
) -> None:
    """The daily job, end to end: ingest, recover, train, evaluate, register, gate, forecast."""
    from pipelines.jobs import daily as jobs

    result = jobs.daily_job(
        _settings(data), business_date=day.date() if day else None, force=force, retrain=retrain
    )
    if result.status == "done":
        gate = result.records.get("gate", {})
        forecast = result.records.get("forecast", {})
        console.print(
            f"daily job {result.business_date}: done. {gate.get('reason', '')}", highlight=False
        )
        console.print(f"forecasts: {forecast.get('path')}", highlight=False)


@app.command("jobs")
@handle_errors
def list_jobs(limit: Annotated[int, typer.Option(help="Rows to show.")] = 30) -> None:
    """List the job history: date, step, status, start, end and error."""
    from rich.table import Table

    from pipelines.jobs.history import read_history

    frame = read_history(_settings().history_db, limit=limit)
    if frame.is_empty():
        console.print("no jobs have run yet: `freshcast run` runs the daily job")
        return
    table = Table("job", "date", "step", "status", "started", "seconds", "error")
    for row in frame.iter_rows(named=True):
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        table.add_row(
            row["job"],
            row["business_date"],
            row["step"],
            row["status"],
            row["started"],
            seconds,
            (row["error"] or "")[:80],
        )
    console.print(table)


@app.command()
@handle_errors
def promote(
    version: Annotated[int, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[
        str, typer.Option(help="Why; logged with the override.")
    ] = "manual promotion",
) -> None:
    """Make a registered version champion, overriding the gate (logged to MLflow)."""
    from pipelines.jobs import daily as jobs

    console.print(f"champion is now version {jobs.promote_version(_settings(), version, reason)}")


@app.command()
@handle_errors
def rollback(
    reason: Annotated[str, typer.Option(help="Why; logged with the override.")] = "manual rollback",
) -> None:
    """Point the champion alias back at the previous champion (logged to MLflow)."""
    from pipelines.jobs import daily as jobs

    console.print(f"champion is now version {jobs.rollback_champion(_settings(), reason)}")


@app.command()
@handle_errors
def schedule(
    once: Annotated[bool, typer.Option(help="Run whatever is due now, then exit.")] = False,
) -> None:
    """Run the daily job and the weekly retrain on their cron schedules (settings)."""
    from pipelines.jobs.schedule import run_schedule

    raise typer.Exit(run_schedule(_settings(), once=once))


# -- commands added by later stages go below this line ------------------------------------


@app.command()
@handle_errors
def refresh(
    data: DataDir,
    through: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Business date: learn days up to it.")
    ],
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Refresh this model file instead, and only write the result (no registry).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Run a finished date again from scratch.")] = False,
) -> None:
    """Update the champion with replay through DATE, register it as challenger, and gate it."""
    if model_path is not None:
        from pipelines.training.refresh import refresh as refresh_file

        _, info = refresh_file(_settings(data), data, through.date(), model_path=model_path)
        if not info.get("new_windows"):
            console.print(f"nothing new through {through.date()}: the model is up to date")
            return
        console.print(
            f"refreshed on {info['new_windows']:,} new and {info['replay_windows']:,} replay "
            f"windows in {info['seconds']:.1f}s; wrote {info['path']}"
        )
        if info.get("needs_retrain"):
            console.print(f"a full retrain is due ({info['reason']}): run `freshcast train`")
        return
    from pipelines.jobs import daily as jobs

    result = jobs.refresh_job(_settings(data), business_date=through.date(), force=force)
    if result.status != "done":
        return
    train, gate = result.records.get("train", {}), result.records.get("gate", {})
    console.print(
        f"refreshed on {train.get('new_windows') or 0:,} new and "
        f"{train.get('replay_windows') or 0:,} replay windows in {train.get('seconds', 0):.1f}s; "
        f"registered v{gate.get('version')} as challenger: {gate.get('reason', '')}",
        highlight=False,
    )
    if train.get("needs_retrain"):
        console.print(
            f"a full retrain is due ({train.get('reason')}): run `freshcast run --retrain`"
        )


@evaluate_app.command("continual")
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
    from research.continual.protocol import ContinualConfig, evaluate_continual
    from research.continual.report import format_summary, log_to_mlflow, write_report

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if not set(names) <= {"lgbm", "neural"} or not names:
        raise FreshcastError(f"--models takes lgbm and/or neural, got {models!r}")
    if target not in ("censored", "recovered"):
        raise FreshcastError(f"--target is censored or recovered, got {target!r}")
    if profile not in ("bench", "default", "smoke"):
        raise FreshcastError(f"--profile is bench, default or smoke, got {profile!r}")
    config = ContinualConfig(warm_days=warm_days, steps=steps, target=target, profile=profile)  # type: ignore[arg-type]
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
    settings = _settings(data)
    if os.environ.get("FRESHCAST_TRACKING_URI"):
        run_id = log_to_mlflow(
            rows, paths, settings.tracking_uri, settings.mlruns_dir / "artifacts"
        )
        console.print(f"logged to MLflow run {run_id}")
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


@app.command()
@handle_errors
def train(
    data: DataDir,
    model: Annotated[
        str, typer.Option(help="lgbm, neural, ensemble, ssa, seasonal_naive or moving_average.")
    ] = "lgbm",
    target: Annotated[
        str, typer.Option(help="recovered (stage-1 demand) or censored (sale_amount).")
    ] = "recovered",
    out: Annotated[
        Path | None, typer.Option(help="Model file (default data/models/<model>-<target>.pkl).")
    ] = None,
    profile: Annotated[str, typer.Option(help="default, or smoke (tiny, for tests).")] = "default",
) -> None:
    """Train a 7-day forecaster on the whole train split and save it atomically."""
    from models.forecasters import MODEL_NAMES
    from pipelines.training.fit import run_train

    if model not in MODEL_NAMES:
        raise FreshcastError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    if target not in ("recovered", "censored"):
        raise FreshcastError(f"unknown target {target!r}; choose recovered or censored")
    if profile not in ("default", "smoke"):
        raise FreshcastError(f"unknown profile {profile!r}; choose default or smoke")
    _, info = run_train(data, model, target, out, profile=profile)  # type: ignore[arg-type]
    console.print(
        f"trained {info['model']} on {info['target']} ({info['train_start']} to "
        f"{info['train_end']}) in {info['seconds']:.1f} s: {info['path']}",
        highlight=False,
    )


@app.command()
@handle_errors
def forecast(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Parquet file to write the forecast to.")],
    model_uri: Annotated[
        Path, typer.Option("--model-uri", help="A model file written by `freshcast train`.")
    ] = Path("data/models/lgbm-recovered.pkl"),
) -> None:
    """Forecast the eval days of every series in eval.parquet, using eval's covariates."""
    from pipelines.training.fit import run_forecast

    path = run_forecast(data, model_uri, out)
    console.print(f"wrote forecast: {path}", highlight=False)


@evaluate_app.command("forecast")
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
        profile=profile,  # type: ignore[arg-type]
    )
    for r in rows:
        if r["scope"] == "clean" and r.get("fold", "mean") == "mean":
            console.print(
                f"{r['method']:>15} {r['target']:>9}  acc {r.get('acc', float('nan')):.4f}  "
                f"wpe {r.get('wpe', float('nan')):+.4f}  cover {r.get('coverage_p10_p90', float('nan')):.3f}",
                highlight=False,
            )
    console.print(f"wrote {len(rows)} rows: {path}", highlight=False)


@app.command()
@handle_errors
def recover(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Parquet file to write the recovered frame to.")],
    method: Annotated[
        str, typer.Option(help="Recovery method: lgbm (default), profile or neural.")
    ] = "lgbm",
) -> None:
    """Recover latent demand in stockout hours of the train split; write it atomically."""
    from models.recovery import METHODS
    from pipelines.recovery.recover import run_recover

    if method not in METHODS:
        raise FreshcastError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    info = run_recover(data, method, out)
    console.print(
        f"recovered {info['rows']:,} rows ({info['series']:,} series, "
        f"{info['imputed_hours']:,} stockout hours) with {method} in {info['seconds']:.1f} s "
        f"(read {info['seconds_read']:.1f}, recover {info['seconds_recover']:.1f}, "
        f"write {info['seconds_write']:.1f}): {info['out']}",
        highlight=False,
    )


@evaluate_app.command("recovery")
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


@app.command()
@handle_errors
def ui(
    host: Annotated[
        str, typer.Option(help="Address to serve on (localhost by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
) -> None:
    """Serve the Streamlit app (data, stockouts, forecasts, models, jobs) on HOST:PORT."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"
    if not script.is_file():
        raise FreshcastError(f"the app is missing: {script}")
    console.print(f"freshcast UI: http://{host}:{port}  (Ctrl+C to stop)")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--theme.primaryColor",
        "#2a9d8f",
    ]
    raise typer.Exit(subprocess.call(cmd))


if __name__ == "__main__":
    app()
