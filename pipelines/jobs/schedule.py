"""`freshcast schedule`: the daily job and the weekly full retrain on cron expressions.

One process, APScheduler 3.x. A failing job is recorded in the job history and tried
again at its next tick; the scheduler itself never dies of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from rich.console import Console

from pipelines.errors import FreshcastError
from pipelines.jobs import history
from pipelines.settings import Settings

console = Console(stderr=True)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    cron: str
    run: Callable[[Settings], object]


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """The product's schedules, from settings."""
    from pipelines.jobs import daily

    return [
        ScheduledJob("daily", settings.daily_cron, lambda s: daily.daily_job(s)),
        # Forced: on a date the daily job already finished, the retrain must still run.
        ScheduledJob(
            "weekly-retrain",
            settings.retrain_cron,
            lambda s: daily.daily_job(s, retrain=True, force=True),
        ),
    ]


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_weekdays(field: str) -> str:
    """Crontab weekday numbers (0 or 7 = Sunday) as names: APScheduler 3 counts from Monday."""
    return re.sub(r"(?<![/\d])\d+", lambda m: _DAY_NAMES[int(m.group()) % 8], field)


def trigger(cron: str) -> CronTrigger:
    """A CronTrigger from a 5-field crontab expression; a bad one is a clear error."""
    fields = cron.split()
    if len(fields) != 5:
        raise FreshcastError(f"bad cron expression {cron!r}: expected 5 fields")
    fields[4] = _cron_weekdays(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    except (ValueError, IndexError) as exc:
        raise FreshcastError(f"bad cron expression {cron!r}: {exc}") from None


def last_fire_time(cron: str, now: datetime) -> datetime | None:
    """The latest time ≤ ``now`` at which ``cron`` fired, looking back up to 8 days."""
    trig = trigger(cron)
    fire = trig.get_next_fire_time(None, now - timedelta(days=8))
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trig.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def run_guarded(settings: Settings, job: ScheduledJob) -> bool:
    """Run one scheduled job, recording its outcome; never raises. True on success."""
    db = settings.layout.job_history_db
    row = history.start_step(db, job=f"schedule:{job.name}", business_date=_today(), step=job.name)
    try:
        job.run(settings)
    except BaseException as exc:  # the scheduler must outlive any job failure
        if isinstance(exc, KeyboardInterrupt):
            history.end_step(db, row, status="failed", error="interrupted")
            raise
        history.end_step(db, row, status="failed", error=(str(exc) or type(exc).__name__)[:2000])
        console.print(f"scheduled job {job.name} failed: {exc}; it will run again at its next tick")
        return False
    history.end_step(db, row, status="done")
    return True


def due_jobs(settings: Settings, now: datetime) -> list[ScheduledJob]:
    """Jobs whose latest fire time has no successful scheduled run since."""
    runs = history.read_history(settings.layout.job_history_db, limit=1000)
    due = []
    for job in scheduled_jobs(settings):
        fired = last_fire_time(job.cron, now)
        if fired is None:
            continue
        ok = runs.filter((runs["job"] == f"schedule:{job.name}") & (runs["status"] == "done"))
        last_ok = max((datetime.fromisoformat(t) for t in ok["started"].to_list()), default=None)
        if last_ok is None or last_ok < fired:
            due.append(job)
    return due


def run_schedule(settings: Settings, *, once: bool = False) -> int:
    """Serve the schedules forever, or with ``once`` run what is due and return."""
    if once:
        due = due_jobs(settings, datetime.now(UTC))
        if not due:
            console.print("nothing is due")
        failures = sum(not run_guarded(settings, job) for job in due)
        return 1 if failures else 0
    scheduler = BlockingScheduler(timezone=UTC)
    for job in scheduled_jobs(settings):
        scheduler.add_job(
            run_guarded,
            trigger(job.cron),
            args=(settings, job),
            id=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
        console.print(f"scheduled {job.name}: {job.cron} (UTC)")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
    return 0


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
