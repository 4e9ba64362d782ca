"""Job commands: the daily job, its history, overrides of the gate, the schedule, refresh, the UI."""

from __future__ import annotations

import importlib.util
import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import DataDir, console, handle_errors, settings_for
from pipelines.errors import FreshcastError, UsageError
from pipelines.jobs.locks import job_lock


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
    accept_day: Annotated[
        list[datetime] | None,
        typer.Option(
            "--accept-day",
            formats=["%Y-%m-%d"],
            help="Use this day although it fails the data-quality gate (logged). Repeatable.",
        ),
    ] = None,
) -> None:
    """The daily job, end to end: ingest, recover, train, evaluate, register, gate, forecast."""
    settings = settings_for(data)
    # The lock first: a second job is refused before the heavy imports below.
    with job_lock(settings):
        from pipelines.jobs import daily

        result = daily.daily_job(
            settings,
            business_date=day.date() if day else None,
            force=force,
            retrain=retrain,
            accept_days={d.date() for d in accept_day or ()},
        )
    if result.status == "done":
        gate = result.records.get("gate", {})
        forecast = result.records.get("forecast", {})
        console.print(
            f"daily job {result.business_date}: done. {gate.get('reason', '')}", highlight=False
        )
        console.print(f"forecasts: {forecast.get('path')}", highlight=False)


@handle_errors
def list_jobs(limit: Annotated[int, typer.Option(help="Rows to show.")] = 30) -> None:
    """List the job history: date, step, status, start, end and error."""
    from rich.table import Table

    from pipelines.jobs.history import read_history, settle
    from pipelines.jobs.locks import job_running

    settings = settings_for()
    frame = settle(
        read_history(settings.layout.job_history_db, limit=limit),
        job_running=job_running(settings),
    )
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


@handle_errors
def promote(
    version: Annotated[int, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[
        str, typer.Option(help="Why; logged with the override.")
    ] = "manual promotion",
) -> None:
    """Make a registered version champion, overriding the gate (logged to MLflow)."""
    from pipelines.jobs.overrides import promote_version

    console.print(f"champion is now version {promote_version(settings_for(), version, reason)}")


@handle_errors
def rollback(
    reason: Annotated[str, typer.Option(help="Why; logged with the override.")] = "manual rollback",
) -> None:
    """Point the champion alias back at the previous champion (logged to MLflow)."""
    from pipelines.jobs.overrides import rollback_champion

    console.print(f"champion is now version {rollback_champion(settings_for(), reason)}")


@handle_errors
def schedule(
    once: Annotated[bool, typer.Option(help="Run whatever is due now, then exit.")] = False,
) -> None:
    """Run the daily job and the weekly retrain on their cron schedules (settings)."""
    from pipelines.jobs.schedule import run_schedule

    raise typer.Exit(run_schedule(settings_for(), once=once))


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

        _, info = refresh_file(settings_for(data), data, through.date(), model_path=model_path)
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
    settings = settings_for(data)
    with job_lock(settings):
        from pipelines.jobs import daily

        result = daily.refresh_job(settings, business_date=through.date(), force=force)
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


@handle_errors
def ui(
    host: Annotated[
        str, typer.Option(help="Address to serve on (localhost by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    allow_remote: Annotated[
        bool,
        typer.Option(
            help="Serve beyond this machine; promote and rollback then need FRESHCAST_ADMIN_TOKEN."
        ),
    ] = False,
) -> None:
    """Serve the Streamlit app (data, stockouts, forecasts, models, jobs) on HOST:PORT.

    Stopping the command (Ctrl+C, SIGTERM) stops the server too.
    """
    import sys

    from pipelines.cli.child import run_until_stopped

    if not _is_loopback(host):
        if not allow_remote:
            raise UsageError(
                f"serving on {host} would let anyone who reaches it promote or roll back "
                "models; pass --allow-remote to mean it (and set FRESHCAST_ADMIN_TOKEN)"
            )
        if not settings_for().admin_token:
            raise UsageError(
                f"serving on {host} needs FRESHCAST_ADMIN_TOKEN: promote and rollback ask for it"
            )

    # Found, not imported: the app is the layer above pipelines, started as its own process.
    spec = importlib.util.find_spec("app.streamlit_app")
    script = Path(spec.origin) if spec is not None and spec.origin else Path("app/streamlit_app.py")
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
    raise typer.Exit(run_until_stopped(cmd))


def _is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
