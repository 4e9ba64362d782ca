"""The one owner of freshcast's on-disk layout under ``FRESHCAST_HOME``.

Every path a job, the CLI or the UI reads or writes below the home folder comes from a
:class:`Layout`; no other module spells out ``data/…`` or ``mlruns/…``. Nothing here
writes: the folders are made by :mod:`pipelines.data.io` when a file is written.

::

    <home>/
      data/
        raw/                         the embedded default dataset (hub layout)
        recovered/<day>.parquet      stage 1 output of the daily job
        recovery/<day>.pkl           the fitted recoverer and series memory behind it
        models/<day>/model.pkl       the day's candidate, through <day> (what is registered)
        models/<day>/lagged.pkl      the same candidate as of <day>−7 (what the gate scores)
        models/<day>/refreshed.pkl   ``freshcast refresh --model FILE``
        models/<model>-<target>.pkl  ``freshcast train``
        forecasts/<day>.parquet      the served forecasts
        ledger/made_on=<day>/        every served forecast, kept (append-only)
        live/<day>.parquet           the ledger scored against the actuals of <day>
        metrics/<day>.json           the day's backtest rows
        replay/<model>/<day>/        the lagged candidate's replay buffer, staged per day
        continual/history.parquet    refresh vs full-fit history (Models page)
        aggregates/<day>/            the UI's precomputed frames
        jobs/<job>/<day>/            step markers (resumable jobs)
        logs/jobs.jsonl              the machine-readable job log
        .daily-job.lock              one job at a time
        .registry.lock               one change of the champion at a time
      mlruns/
        mlflow.db                    the default tracking store
        artifacts/                   MLflow artifacts of the default store
        jobs.db                      the job history (steps, status, errors)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DAY_FILE_GLOB = "????-??-??.parquet"


@dataclass(frozen=True)
class Layout:
    """Paths under one home folder. Days are ISO strings (``2024-06-25``)."""

    home: Path

    # -- the two top folders -------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def mlruns(self) -> Path:
        return self.home / "mlruns"

    # -- inputs ----------------------------------------------------------------------------
    @property
    def raw(self) -> Path:
        """Where the embedded default dataset is simulated when no dataset is configured."""
        return self.data / "raw"

    # -- daily job outputs -----------------------------------------------------------------
    def recovered(self, day: str) -> Path:
        return self.data / "recovered" / f"{day}.parquet"

    def recovery_state(self, day: str) -> Path:
        """What the recovery of ``recovered(day)`` leaves for the next day's incremental one:
        the fitted recoverer, its series memory and a digest of the history."""
        return self.data / "recovery" / f"{day}.pkl"

    def recovery_states(self) -> list[Path]:
        """Every day's :meth:`recovery_state`, oldest first."""
        folder = self.data / "recovery"
        return sorted(folder.glob("????-??-??.pkl")) if folder.is_dir() else []

    def model(self, day: str) -> Path:
        return self.data / "models" / day / "model.pkl"

    def lagged_model(self, day: str) -> Path:
        """The day's candidate as of D−7: the model the gate scores on D−6..D."""
        return self.data / "models" / day / "lagged.pkl"

    def lagged_buffer(self, model: str, day: str) -> Path:
        """The replay buffer that goes with :meth:`lagged_model` (the lagged chain's)."""
        return self.replay(model) / day

    def refreshed_model(self, day: str) -> Path:
        return self.data / "models" / day / "refreshed.pkl"

    def trained_model(self, model: str, target: str) -> Path:
        return self.data / "models" / f"{model}-{target}.pkl"

    def forecasts(self, day: str) -> Path:
        return self.data / "forecasts" / f"{day}.parquet"

    def metrics(self, day: str) -> Path:
        return self.data / "metrics" / f"{day}.json"

    def replay(self, model: str) -> Path:
        """The replay buffers of one forecaster kind; each day stages its own copy below."""
        return self.data / "replay" / model

    @property
    def ledger(self) -> Path:
        """The forecast ledger: ``made_on=<day>/version=<v>.parquet`` partitions."""
        return self.data / "ledger"

    def live(self, day: str) -> Path:
        """The ledger's live scores as of a business date."""
        return self.data / "live" / f"{day}.parquet"

    def live_files(self) -> list[Path]:
        """Every business date's live scores, oldest first."""
        folder = self.data / "live"
        return sorted(folder.glob(DAY_FILE_GLOB)) if folder.is_dir() else []

    @property
    def continual_history(self) -> Path:
        return self.data / "continual" / "history.parquet"

    @property
    def aggregates(self) -> Path:
        return self.data / "aggregates"

    def latest(self, kind: str) -> Path | None:
        """The newest ``data/<kind>/<day>.parquet`` (kind: ``recovered`` or ``forecasts``)."""
        folder = self.data / kind
        if not folder.is_dir():
            return None
        files = sorted(p for p in folder.glob(DAY_FILE_GLOB) if p.is_file())
        return files[-1] if files else None

    # -- running jobs ----------------------------------------------------------------------
    def job_markers(self, job: str, day: str) -> Path:
        return self.data / "jobs" / job / day

    @property
    def job_log(self) -> Path:
        return self.data / "logs" / "jobs.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.data / ".daily-job.lock"

    @property
    def registry_lock(self) -> Path:
        return self.data / ".registry.lock"

    @property
    def job_history_db(self) -> Path:
        return self.mlruns / "jobs.db"

    # -- MLflow's default local store ------------------------------------------------------
    @property
    def tracking_db(self) -> Path:
        return self.mlruns / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.mlruns / "artifacts"

    @property
    def default_tracking_uri(self) -> str:
        return f"sqlite:///{self.tracking_db}"
