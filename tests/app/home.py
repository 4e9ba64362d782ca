"""A small project home for the app tests: simulated data and two real daily-job runs.

The job runs for the last two train days, so the home holds what a planner sees after a
second morning: two registered versions (the second a replay refresh), recovered demand,
forecasts, aggregates, the refresh history and the job history.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.settings import Settings, load_settings

CONFIG = SimulationConfig(series=40, days=42, eval_days=7, seed=3)


def build_home(home: Path) -> Settings:
    """Fill ``home`` with simulated data and the outputs of two daily-job runs."""
    from pipelines.jobs import daily as jobs

    os.environ["FRESHCAST_HOME"] = str(home)
    write_simulation(CONFIG, home / "data" / "raw")
    settings = load_settings(profile="smoke")
    last = CONFIG.start + timedelta(days=CONFIG.days - 1)
    jobs.daily_job(settings, business_date=last - timedelta(days=1))
    jobs.daily_job(settings, business_date=last)
    return settings
