"""The ``freshcast`` command line (Typer): one module per group of commands.

=============  ========================================================================
module         commands
=============  ========================================================================
``data``       simulate, validate, pull, recover
``jobs``       run (the daily job), jobs, promote, rollback, schedule, refresh, ui
``forecasting`` train, forecast
``evaluate``   evaluate forecast, evaluate recovery, evaluate continual
=============  ========================================================================
"""

from __future__ import annotations

import typer

from pipelines.cli import data, evaluate, forecasting, jobs

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

# Registration order is the order of `freshcast --help`.
app.command()(data.simulate)
app.command()(data.validate)
app.command()(data.pull)
app.command()(jobs.run)
app.command("jobs")(jobs.list_jobs)
app.command()(jobs.promote)
app.command()(jobs.rollback)
app.command()(jobs.schedule)
app.command()(jobs.refresh)
app.add_typer(evaluate_app, name="evaluate")
evaluate_app.command("forecast")(evaluate.evaluate_forecast_cmd)
evaluate_app.command("recovery")(evaluate.evaluate_recovery_cmd)
evaluate_app.command("continual")(evaluate.evaluate_continual_cmd)
app.command()(forecasting.train)
app.command()(forecasting.forecast)
app.command()(data.recover)
app.command()(jobs.ui)

__all__ = ["app"]
