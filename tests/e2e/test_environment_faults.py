"""Faults of the machine around a job: one message and exit 3, then a clean resume; the job
lock comes before the heavy imports; the registry lock keeps a person's promotion."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from filelock import FileLock

from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.jobs.history import read_history, settle
from pipelines.jobs.locks import JobLockedError, registry_lock
from pipelines.serving import registry
from pipelines.settings import load_settings
from tests.e2e.cli import run_freshcast

pytestmark = pytest.mark.slow
SIM = SimulationConfig(series=40, days=42, eval_days=3, seed=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_simulation(SIM, out)
    return out


def _env(home: Path, data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHCAST_")}
    return env | {
        "FRESHCAST_HOME": str(home),
        "FRESHCAST_DATA": str(data),
        "FRESHCAST_PROFILE": "smoke",
        **extra,
    }


def _small_disk(limit: int):  # type: ignore[no-untyped-def]
    """A child whose files cannot grow past ``limit`` bytes: writes fail as on a full disk."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def test_a_full_disk_is_one_message_and_the_job_resumes(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run"],
        env=_env(home, data),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_small_disk(64 * 1024),
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "free disk space" in errors[0]
    assert len(proc.stderr.splitlines()) < 20
    # Space is back: the same command resumes and finishes.
    resumed = run_freshcast("run", home=home, data=data)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    settings = load_settings(home=home)
    rows = settle(read_history(settings.layout.job_history_db), job_running=False)
    assert "running" not in rows["status"].to_list()
    registry.configure(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["daily"], output_format="list")
    assert all(r.info.status != "RUNNING" for r in runs)


def test_an_unreachable_tracking_server_is_one_message(data: Path, tmp_path: Path) -> None:
    proc = run_freshcast(
        "run",
        home=tmp_path / "home",
        data=data,
        FRESHCAST_TRACKING_URI="http://127.0.0.1:9",  # the discard port: nothing listens
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "the MLflow tracking server at http://127.0.0.1:9 cannot be reached" in proc.stderr


def test_the_job_lock_is_taken_before_the_heavy_imports(data: Path, tmp_path: Path) -> None:
    """A second job is refused before MLflow, LightGBM or torch are even imported."""
    home = tmp_path / "home"
    settings = load_settings(home=home)
    settings.layout.lock_file.parent.mkdir(parents=True)
    probe = (
        "import sys\n"
        "from pipelines.cli import app\n"
        "try:\n"
        "    app(['run'])\n"
        "except SystemExit as exc:\n"
        "    heavy = sorted(m for m in ('mlflow', 'lightgbm', 'torch') if m in sys.modules)\n"
        "    print(json.dumps({'code': exc.code, 'heavy': heavy}))\n"
    )
    with FileLock(str(settings.layout.lock_file)):
        proc = subprocess.run(
            [sys.executable, "-c", "import json\n" + probe],
            env=_env(home, data),
            capture_output=True,
            text=True,
            timeout=120,
        )
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 3, "heavy": []}, proc.stderr[-2000:]
    assert "another freshcast job is running" in proc.stderr


def test_a_registry_change_waits_for_the_registry_lock(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    settings.layout.registry_lock.parent.mkdir(parents=True)
    # Another process is changing the registry: this one gives up after its wait.
    with (
        FileLock(str(settings.layout.registry_lock)),
        pytest.raises(JobLockedError, match="being changed by another"),
        registry_lock(settings, wait=0.2),
    ):
        pass
    with registry_lock(settings, wait=0.2):  # free again
        pass


def test_promote_by_hand_refuses_while_the_registry_is_locked(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_freshcast("run", home=home, data=data).returncode == 0
    settings = load_settings(home=home)
    probe = (
        "from pipelines.jobs import locks\n"
        "locks.REGISTRY_WAIT_SECONDS = 0.5\n"
        "from pipelines.cli import app\n"
        "app(['promote', '1', '--reason', 'test'])\n"
    )
    with FileLock(str(settings.layout.registry_lock)):
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            env=_env(home, data),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "the model registry is being changed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_locked_tracking_database_is_one_message(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_freshcast("run", home=home, data=data).returncode == 0
    settings = load_settings(home=home)
    holder = sqlite3.connect(settings.layout.tracking_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds a write lock on the store
    try:
        proc = run_freshcast("run", "--force", home=home, data=data)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "a database is locked by another process" in proc.stderr
    assert str(settings.layout.tracking_db) in proc.stderr
