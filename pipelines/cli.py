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
    from pipelines.simulate import SimulationConfig, write_simulation

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
    from pipelines.validate import render_report, validate_dataset

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
    from pipelines.pull import pull_dataset

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
    from pipelines import jobs

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

    from pipelines.history import read_history

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
    from pipelines import jobs

    console.print(f"champion is now version {jobs.promote_version(_settings(), version, reason)}")


@app.command()
@handle_errors
def rollback(
    reason: Annotated[str, typer.Option(help="Why; logged with the override.")] = "manual rollback",
) -> None:
    """Point the champion alias back at the previous champion (logged to MLflow)."""
    from pipelines import jobs

    console.print(f"champion is now version {jobs.rollback_champion(_settings(), reason)}")


@app.command()
@handle_errors
def schedule(
    once: Annotated[bool, typer.Option(help="Run whatever is due now, then exit.")] = False,
) -> None:
    """Run the daily job and the weekly retrain on their cron schedules (settings)."""
    from pipelines.schedule import run_schedule

    raise typer.Exit(run_schedule(_settings(), once=once))


# -- commands added by later stages go below this line ------------------------------------


if __name__ == "__main__":
    app()
