"""Data commands: simulate, validate, pull and recover (stage 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import DataDir, console, handle_errors
from pipelines.errors import FreshcastError


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
