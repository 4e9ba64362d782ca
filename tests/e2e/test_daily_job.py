"""The daily job end to end, with real MLflow on a temporary SQLite store (no mocks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import polars as pl
import pytest
from filelock import FileLock
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.data import io
from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.jobs import daily as jobs
from pipelines.jobs.history import read_history
from pipelines.serving import registry
from pipelines.serving.forecast import forecast_requests
from pipelines.settings import GateSettings, load_settings

pytestmark = pytest.mark.slow
SIM = SimulationConfig(series=50, days=49, eval_days=7, seed=11)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHCAST_")}
    env.update({"FRESHCAST_HOME": str(home), "FRESHCAST_PROFILE": "smoke", **extra})
    return env


def _freshcast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the freshcast CLI in a child process and insist that it succeeds."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _home(tmp: Path, raw: Path) -> Path:
    home = tmp
    (home / "data").mkdir(parents=True)
    os.symlink(raw, home / "data" / "raw")
    return home


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    write_simulation(SIM, out)
    return out


@pytest.fixture(scope="module")
def done_home(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> Path:
    """A home where the daily job ran once, uninterrupted, in a subprocess."""
    home = _home(tmp_path_factory.mktemp("home"), raw)
    _freshcast("run", env=_env(home))
    return home


def _settings(home: Path, **overrides):
    return load_settings(home=home, data_dir=home / "data" / "raw", profile="smoke", **overrides)


def test_job_writes_forecasts_runs_and_a_champion(done_home: Path) -> None:
    day = "2024-05-15"  # the simulated train split's last day (49 days from 2024-03-28)
    forecasts = pl.read_parquet(done_home / "data" / "forecasts" / f"{day}.parquet")
    assert forecasts.height == SIM.series * 7
    assert forecasts["dt"].min().isoformat() == "2024-05-16"
    assert (forecasts["yhat_p10"] <= forecasts["yhat_p90"]).all()
    registry.configure(_settings(done_home).tracking_uri)
    versions = registry.list_versions()
    assert versions["version"].to_list() == [1]
    assert "champion" in versions["aliases"][0]
    runs = mlflow.search_runs(experiment_names=["daily"], output_format="list")
    names = {r.info.run_name for r in runs}
    assert {"ingest", "recover", "train", "evaluate", "register", "gate", "forecast"} <= names
    parent = [r for r in runs if r.info.run_name == f"daily {day}"]
    assert len(parent) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(children) >= 7
    assert all(r.data.tags.get("business_date") == day for r in children)


def test_rerun_is_a_no_op(done_home: Path) -> None:
    result = CliRunner().invoke(app, ["run"], env=_env(done_home))
    assert result.exit_code == 0, result.output
    assert "already done" in result.output
    registry.configure(_settings(done_home).tracking_uri)
    assert registry.list_versions().height == 1


def test_second_run_is_locked_out(done_home: Path) -> None:
    settings = _settings(done_home)
    with FileLock(str(settings.layout.lock_file)):
        result = CliRunner().invoke(app, ["run"], env=_env(done_home))
    assert result.exit_code == 3
    assert "another freshcast job is running" in result.output
    assert "Traceback" not in result.output


def test_pyfunc_in_a_fresh_process_matches_the_job(done_home: Path, tmp_path: Path) -> None:
    settings = _settings(done_home)
    script = (
        "import sys, mlflow, polars as pl\n"
        "from pipelines.serving import registry\n"
        "from pipelines.serving.pyfunc import predict_pyfunc\n"
        f"registry.configure({settings.tracking_uri!r})\n"
        "m = mlflow.pyfunc.load_model('models:/freshcast-demand@champion')\n"
        "req = pl.read_parquet(sys.argv[1])\n"
        "predict_pyfunc(m, req).write_parquet(sys.argv[2])\n"
    )
    day = "2024-05-15"
    history = io.scan_days(done_home / "data" / "raw")
    requests = forecast_requests(
        history.filter(pl.col("dt") <= pl.date(2024, 5, 15)),
        history.filter(pl.col("dt") > pl.date(2024, 5, 15)),
        day=pd.Timestamp(day).date(),
        horizon=7,
    )
    req_path, out_path = tmp_path / "req.parquet", tmp_path / "out.parquet"
    requests.write_parquet(req_path)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(req_path), str(out_path)],
        env=_env(done_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = pl.read_parquet(out_path).sort("store_id", "product_id", "dt")
    job = pl.read_parquet(done_home / "data" / "forecasts" / f"{day}.parquet").sort(
        "store_id", "product_id", "dt"
    )
    assert fresh.select("store_id", "product_id", "dt").equals(
        job.select("store_id", "product_id", "dt")
    )
    for column in ("yhat", "yhat_p10", "yhat_p90"):
        assert (fresh[column] - job[column]).abs().max() < 1e-9


def test_pyfunc_rejects_a_wrong_schema(done_home: Path) -> None:
    registry.configure(_settings(done_home).tracking_uri)
    model = mlflow.pyfunc.load_model("models:/freshcast-demand@champion")
    bad = pd.DataFrame({"store_id": [1], "product_id": [2], "dt": pd.to_datetime(["2024-05-16"])})
    with pytest.raises(Exception, match=r"missing inputs \['discount'"):
        model.predict(bad)
    unknown = pd.DataFrame(
        {
            "store_id": [10_000],
            "product_id": [2],
            "dt": pd.to_datetime(["2024-05-16"]),
            "discount": [1.0],
            "holiday_flag": pd.array([0], dtype="int32"),
            "activity_flag": pd.array([0], dtype="int32"),
            "precpt": [0.0],
            "avg_temperature": [20.0],
            "avg_humidity": [50.0],
            "avg_wind_level": [2.0],
        }
    )
    with pytest.raises(ValueError, match=r"no history for, e\.g\. store_id=10000, product_id=2"):
        model.predict(unknown)


def _marker_dir(home: Path, day: str) -> Path:
    return home / "data" / "jobs" / "daily" / day


def test_killed_job_resumes_to_the_same_final_state(
    done_home: Path, raw: Path, tmp_path: Path
) -> None:
    home = _home(tmp_path / "killed", raw)
    day = "2024-05-15"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it mid-job: once training has finished, while evaluate runs. Waiting for the
    # train marker alone races the evaluate step's history row on a loaded machine.
    db = _settings(home).layout.job_history_db

    def evaluating() -> bool:
        if not (_marker_dir(home, day) / "train.json").exists() or not db.is_file():
            return False
        rows = read_history(db)
        return (
            rows.filter((pl.col("step") == "evaluate") & (pl.col("status") == "running")).height > 0
        )

    deadline = time.time() + 300
    while not evaluating():
        assert proc.poll() is None, "the job ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (_marker_dir(home, day) / "_done.json").exists()
    assert not list((home / "data").rglob("*.tmp"))
    registry.configure(_settings(home).tracking_uri)

    def statuses() -> dict[str, str]:
        runs = mlflow.search_runs(experiment_names=["daily"], output_format="list")
        return {r.info.run_name: r.info.status for r in runs}

    # An unfinished job does not look finished.
    assert statuses()[f"daily {day}"] == "RUNNING"
    resumed = _freshcast("run", env=_env(home))
    assert statuses()[f"daily {day}"] == "FINISHED"
    assert "RUNNING" not in statuses().values()
    assert "resuming after an interrupted run" in resumed.stderr
    assert "train: done earlier, skipped" in resumed.stderr
    a = pl.read_parquet(home / "data" / "forecasts" / f"{day}.parquet")
    b = pl.read_parquet(done_home / "data" / "forecasts" / f"{day}.parquet")
    assert a.select("store_id", "product_id", "dt").equals(b.select("store_id", "product_id", "dt"))
    # Threaded float sums may differ in the last bits between processes; nothing more.
    for column in ("yhat", "yhat_p10", "yhat_p50", "yhat_p90"):
        assert (a[column] - b[column]).abs().max() < 1e-9
    registry.configure(_settings(home).tracking_uri)
    versions = registry.list_versions()
    assert versions["version"].to_list() == [1]
    assert "champion" in versions["aliases"][0]


def test_gate_keeps_a_worse_challenger_and_promotes_a_better_one(raw: Path, tmp_path: Path) -> None:
    home = _home(tmp_path / "gate", raw)
    # The acc rule under test; the |wpe| rule has its own unit tests. On 50 simulated series
    # the clean-day protocol shows a large bias for every model (stockouts pick the busy days).
    loose = GateSettings(wpe_limit=1.0)
    # The first champion is a weak baseline; nothing to beat, so it is promoted.
    first = jobs.daily_job(
        _settings(home, forecast_model="seasonal_naive", gate=loose),
        business_date=pd.Timestamp("2024-05-13").date(),
    )
    assert first.records["gate"]["promote"]
    # LightGBM backtests better on the same window: promoted.
    better = jobs.daily_job(
        _settings(home, forecast_model="lgbm", gate=loose),
        business_date=pd.Timestamp("2024-05-14").date(),
    )
    ev = better.records["evaluate"]
    assert ev["metrics"]["acc"] > ev["champion_metrics"]["acc"]
    assert better.records["gate"]["promote"]
    # The baseline again, now the challenger: worse on the same window, kept out.
    worse = jobs.daily_job(
        _settings(home, forecast_model="seasonal_naive", gate=loose),
        business_date=pd.Timestamp("2024-05-15").date(),
    )
    ev = worse.records["evaluate"]
    assert ev["metrics"]["acc"] < ev["champion_metrics"]["acc"] - 0.005
    assert not worse.records["gate"]["promote"]
    registry.configure(_settings(home).tracking_uri)
    assert str(registry.alias_version("champion").version) == better.records["register"]["version"]
    assert str(registry.alias_version("challenger").version) == worse.records["register"]["version"]
    # A person can override the gate, and roll the override back.
    runner = CliRunner()
    promoted = runner.invoke(
        app, ["promote", worse.records["register"]["version"], "--reason", "test"], env=_env(home)
    )
    assert promoted.exit_code == 0, promoted.output
    assert str(registry.alias_version("champion").version) == worse.records["register"]["version"]
    rolled = runner.invoke(app, ["rollback"], env=_env(home))
    assert rolled.exit_code == 0, rolled.output
    assert str(registry.alias_version("champion").version) == better.records["register"]["version"]
    overrides = mlflow.search_runs(experiment_names=["overrides"], output_format="list")
    assert sorted(r.data.tags["action"] for r in overrides) == ["promote", "rollback"]


def test_schedule_once_runs_the_due_job(done_home: Path) -> None:
    _freshcast(
        "schedule",
        "--once",
        env=_env(done_home, FRESHCAST_DAILY_CRON="* * * * *", FRESHCAST_RETRAIN_CRON="0 0 1 1 *"),
    )
    rows = read_history(_settings(done_home).layout.job_history_db)
    scheduled = rows.filter(rows["job"] == "schedule:daily")
    assert scheduled["status"].to_list() == ["done"]
    listing = CliRunner().invoke(app, ["jobs"], env=_env(done_home))
    assert listing.exit_code == 0
    assert "daily" in listing.output


def test_two_consecutive_dates_refresh_with_replay(raw: Path, tmp_path: Path) -> None:
    home = _home(tmp_path / "refresh", raw)
    settings = _settings(home, gate=GateSettings(wpe_limit=1.0))
    first = jobs.daily_job(settings, business_date=pd.Timestamp("2024-05-14").date())
    assert first.records["train"]["mode"] == "train"
    second = jobs.daily_job(settings, business_date=pd.Timestamp("2024-05-15").date())
    assert second.records["train"]["mode"] == "refresh"
    assert "promote" in second.records["gate"]
    assert (home / "data" / "replay" / "lgbm" / "2024-05-15" / "manifest.json").is_file()
    registry.configure(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["daily"], output_format="list")
    train_modes = sorted(r.data.params.get("mode") for r in runs if r.info.run_name == "train")
    assert train_modes == ["refresh", "train"]
    gates = [
        r
        for r in runs
        if r.info.run_name == "gate" and r.data.tags["business_date"] == "2024-05-15"
    ]
    assert len(gates) == 1
    assert "gate/promote" in gates[0].data.metrics
    assert registry.list_versions().height == 2
    history = pl.read_parquet(home / "data" / "continual" / "history.parquet")
    assert history["mode"].to_list() == ["train", "refresh"]
    full, refreshed = history.row(0, named=True), history.row(1, named=True)
    assert 0 < refreshed["acc_refresh_prequential"] < 1
    assert refreshed["seconds_train_step"] > 0
    # The refresh day is compared with the latest full fit's cost, and both sides scored.
    assert refreshed["seconds_last_full_fit"] == full["seconds_train_step"]
    assert 0 < refreshed["acc_candidate"] < 1
    assert 0 < refreshed["acc_champion"] < 1
    assert full["acc_champion"] is None
    # `freshcast refresh` on the next date: the same steps up to the gate, as its own job.
    out = CliRunner().invoke(
        app,
        ["refresh", "--data", str(home / "data" / "raw"), "--through", "2024-05-16"],
        env=_env(home),
    )
    assert out.exit_code == 0, out.output
    assert "registered v3 as challenger" in out.output
    assert registry.alias_version(registry.CHALLENGER).version == 3  # type: ignore[union-attr]
    assert (home / "data" / "replay" / "lgbm" / "2024-05-16" / "manifest.json").is_file()
    runs = mlflow.search_runs(experiment_names=["refresh"], output_format="list")
    assert [r.data.params.get("mode") for r in runs if r.info.run_name == "train"] == ["refresh"]
    assert len([r for r in runs if r.info.run_name == "gate"]) == 1


def test_the_weekly_retrain_runs_on_a_date_already_done(raw: Path, tmp_path: Path) -> None:
    from pipelines.jobs.schedule import run_guarded, scheduled_jobs

    home = _home(tmp_path / "weekly", raw)
    settings = _settings(home, gate=GateSettings(wpe_limit=1.0))
    jobs.daily_job(settings, business_date=pd.Timestamp("2024-05-14").date())
    done = jobs.daily_job(settings, business_date=pd.Timestamp("2024-05-15").date())
    assert done.records["train"]["mode"] == "refresh"
    weekly = next(j for j in scheduled_jobs(settings) if j.name == "weekly-retrain")
    assert run_guarded(settings, weekly)
    train = json.loads((_marker_dir(home, "2024-05-15") / "train.json").read_text())
    assert train["mode"] == "retrain"
    assert train["chain_from"] is None  # a full fit, not the champion's chain
    registry.configure(settings.tracking_uri)
    assert registry.list_versions().height == 3


def test_refresh_without_a_champion_is_a_clear_error(raw: Path, tmp_path: Path) -> None:
    home = _home(tmp_path / "empty", raw)
    out = CliRunner().invoke(
        app,
        ["refresh", "--data", str(home / "data" / "raw"), "--through", "2024-05-15"],
        env=_env(home),
    )
    assert out.exit_code != 0
    assert "no champion to refresh" in out.output
    assert "Traceback" not in out.output


def test_a_first_champion_past_the_bias_cap_carries_a_visible_warning(done_home: Path) -> None:
    """With no champion the first model is promoted whatever its bias, but never silently."""
    import json

    markers = done_home / "data" / "jobs" / "daily" / "2024-05-15"
    gate = json.loads((markers / "gate.json").read_text())
    metrics = json.loads((markers / "evaluate.json").read_text())["metrics"]
    wpe = metrics.get("wpe_demand", metrics["wpe"])  # what the cap judges
    settings = _settings(done_home)
    registry.configure(settings.tracking_uri)
    version = registry.get_version(1)
    assert version is not None
    assert gate["promote"] is True
    if abs(wpe) > settings.gate.wpe_limit:
        assert gate["warning"].startswith("v1 became champion although its |wpe|")
        assert version.tags["gate/warning"] == gate["warning"]
    else:
        assert gate["warning"] is None
        assert "gate/warning" not in version.tags
