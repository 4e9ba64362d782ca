"""What every command shares: the consoles, the error handler and the settings.

Every command turns a :class:`~pipelines.errors.FreshcastError` into a readable message
and a non-zero exit code; users never see a traceback (set FRESHCAST_DEBUG=1 to see one).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console

from pipelines.errors import FreshcastError
from pipelines.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)
# MLflow's SQL store logs every database error it re-raises, with the whole traceback (a
# full disk printed ~750 lines). The error reaches handle_errors anyway, as one message.
logging.getLogger("mlflow.store.db.utils").setLevel(
    logging.DEBUG if os.environ.get("FRESHCAST_DEBUG") else logging.CRITICAL
)
F = TypeVar("F", bound=Callable[..., Any])

DataDir = Annotated[Path, typer.Option("--data", help="Dataset folder in the hub layout.")]


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

    return cast(F, wrapper)


def settings_for(data: Path | None = None) -> Settings:
    """The environment's settings, with the dataset folder replaced when ``--data`` is given."""
    settings = load_settings()
    return settings if data is None else settings.model_copy(update={"data_dir": data})
