"""freshcast's two locks, light enough to take before anything heavy is imported.

* **The job lock** (``data/.daily-job.lock``): one job at a time. The CLI takes it before it
  imports the job's modules (MLflow, LightGBM, torch), so a second job is told within a
  second or two, not after their start-up; the runner takes the same lock object again.
* **The registry lock** (``data/.registry.lock``): every change of ``champion`` (the gate,
  a rollback on live evidence, ``promote`` and ``rollback`` by hand) holds it around its
  read-then-write, so no alias or champion-history change is lost to a concurrent one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from pipelines.errors import FreshcastError
from pipelines.settings import Settings

# One FileLock object per path and process: filelock counts re-entries of the same object,
# so the CLI and the runner can both "take" the job lock.
_LOCKS: dict[Path, FileLock] = {}
REGISTRY_WAIT_SECONDS = 30.0


class JobLockedError(FreshcastError):
    """Another job holds the lock (exit code 3)."""

    exit_code = 3


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path not in _LOCKS:
        _LOCKS[path] = FileLock(str(path))
    return _LOCKS[path]


@contextmanager
def job_lock(settings: Settings) -> Iterator[None]:
    """Hold the job lock, or fail at once with :class:`JobLockedError`."""
    path = settings.layout.lock_file
    lock = _lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise JobLockedError(
            f"another freshcast job is running (lock {path}); try again when it ends"
        ) from None
    try:
        yield
    finally:
        lock.release()


def job_running(settings: Settings) -> bool:
    """Whether a job holds the job lock right now (in this process or another)."""
    lock = _lock(settings.layout.lock_file)
    if lock.is_locked:
        return True
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@contextmanager
def registry_lock(settings: Settings, *, wait: float | None = None) -> Iterator[None]:
    """Hold the registry lock while the champion changes; give up after ``wait`` seconds
    (default :data:`REGISTRY_WAIT_SECONDS`)."""
    path = settings.layout.registry_lock
    lock = _lock(path)
    try:
        lock.acquire(timeout=REGISTRY_WAIT_SECONDS if wait is None else wait)
    except Timeout:
        raise JobLockedError(
            f"the model registry is being changed by another freshcast process (lock {path}); "
            "try again in a moment"
        ) from None
    try:
        yield
    finally:
        lock.release()
