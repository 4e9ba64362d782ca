"""The scheduler's pure parts: fire times, what is due, and failure isolation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.errors import FreshcastError
from pipelines.jobs import history
from pipelines.jobs.schedule import ScheduledJob, due_jobs, last_fire_time, run_guarded
from pipelines.settings import load_settings


def test_last_fire_time() -> None:
    now = datetime(2024, 6, 26, 7, 0, tzinfo=UTC)  # a Wednesday
    assert last_fire_time("30 5 * * *", now) == datetime(2024, 6, 26, 5, 30, tzinfo=UTC)
    assert last_fire_time("0 3 * * 0", now) == datetime(2024, 6, 23, 3, 0, tzinfo=UTC)
    with pytest.raises(FreshcastError, match="bad cron expression"):
        last_fire_time("every day", now)


def test_failure_is_recorded_and_not_raised(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)

    def boom(_settings):
        raise RuntimeError("disk full")

    assert run_guarded(settings, ScheduledJob("daily", "* * * * *", boom)) is False
    rows = history.read_history(settings.layout.job_history_db)
    assert rows["status"].to_list() == ["failed"]
    assert rows["error"].to_list() == ["disk full"]
    assert run_guarded(settings, ScheduledJob("daily", "* * * * *", lambda s: None)) is True


def test_due_jobs_until_a_successful_run(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, daily_cron="0 0 * * *", retrain_cron="0 0 1 1 *")
    now = datetime.now(UTC)
    assert [j.name for j in due_jobs(settings, now)] == ["daily"]
    row = history.start_step(
        settings.layout.job_history_db, job="schedule:daily", business_date="x", step="daily"
    )
    history.end_step(settings.layout.job_history_db, row, status="done")
    assert due_jobs(settings, datetime.now(UTC)) == []


def test_crontab_weekdays_count_from_sunday() -> None:
    now = datetime(2024, 6, 26, 7, 0, tzinfo=UTC)  # a Wednesday
    assert last_fire_time("0 3 * * 7", now) == datetime(2024, 6, 23, 3, 0, tzinfo=UTC)
    assert last_fire_time("0 3 * * 1-2", now) == datetime(2024, 6, 25, 3, 0, tzinfo=UTC)
