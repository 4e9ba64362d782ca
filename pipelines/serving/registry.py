"""MLflow tracking and the model registry, through public APIs only.

The registered model ``freshcast-demand`` carries two aliases: ``champion`` (what serves
forecasts) and ``challenger`` (the newest candidate). Stages are not used. Nothing here
runs at import time: call :func:`configure` first.
"""

from __future__ import annotations

import logging
import os
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import mlflow
import pandas as pd
import polars as pl
import polars.selectors as cs
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

MODEL_NAME = "freshcast-demand"
CHAMPION = "champion"
CHALLENGER = "challenger"
# Registered-model tag holding past champions, newest last, for rollback.
_HISTORY_TAG = "champion_history"


def configure(tracking_uri: str) -> None:
    """Point tracking and the registry at ``tracking_uri`` (SQLite file or a server)."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # MLflow narrates every registration at INFO/WARNING; the job reports its own progress.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def check_reachable(tracking_uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast when a tracking server does not answer (MLflow's own client retries for
    minutes first). Raises ConnectionError; a local store always passes."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"{url}: {exc}") from None


def ensure_experiment(name: str, artifact_root: Path | None = None) -> str:
    """The id of the experiment ``name``, created (with a local artifact root) if missing."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_root.resolve().as_uri() if artifact_root is not None else None
    return mlflow.create_experiment(name, artifact_location=location)


def log_frame_input(frame: pl.DataFrame, *, source: str, name: str, context: str) -> None:
    """Log a dataset input (source path, digest, row count) on the active run.

    Only a small preview is converted to pandas; the digest and size describe the whole frame.
    """
    digest = f"{int(frame.hash_rows(seed=0).sum()) & 0xFFFFFFFF:08x}"
    preview = frame.head(1000).select(cs.numeric() | cs.date() | cs.string()).to_pandas()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        dataset = from_pandas(preview, source=source, name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={"rows": str(frame.height)})
    mlflow.log_params({f"{context}_rows": frame.height, f"{context}_digest": digest})


def log_pyfunc(
    python_model: PythonModel,
    *,
    artifacts: Mapping[str, str],
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    tags: Mapping[str, str],
    code_paths: Sequence[str] = (),
    pip_requirements: Sequence[str] = (),
) -> ModelVersion:
    """Log a pyfunc on the active run and register it; tags mark the version for dedupe.

    Pinning ``pip_requirements`` skips MLflow's requirement inference, which loads the
    model in a subprocess and costs tens of seconds per registration.
    """
    signature = infer_signature(input_example, output_example)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(Integer columns|CloudPickle).*")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts=dict(artifacts),
            signature=signature,
            input_example=input_example,
            code_paths=list(code_paths) or None,
            pip_requirements=list(pip_requirements) or None,
        )
    version = mlflow.register_model(info.model_uri, MODEL_NAME, tags=dict(tags))
    return version


def find_version(**tags: str) -> ModelVersion | None:
    """The newest registered version whose tags include all of ``tags``, if any."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    except MlflowException:
        return None
    hits = [v for v in versions if all(v.tags.get(k) == val for k, val in tags.items())]
    return max(hits, key=lambda v: int(v.version), default=None)


def alias_version(alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when unset or no model exists yet."""
    try:
        return MlflowClient().get_model_version_by_alias(MODEL_NAME, alias)
    except MlflowException:
        return None


def set_alias(alias: str, version: str | int) -> None:
    MlflowClient().set_registered_model_alias(MODEL_NAME, alias, str(version))


def set_champion(version: str | int) -> None:
    """Make ``version`` champion, remembering the previous one for :func:`rollback_champion`."""
    client = MlflowClient()
    current = alias_version(CHAMPION)
    if current is not None and str(current.version) == str(version):
        return
    if current is not None:
        history = _champion_history()
        client.set_registered_model_tag(
            MODEL_NAME, _HISTORY_TAG, ",".join([*history, str(current.version)][-20:])
        )
    set_alias(CHAMPION, version)


def rollback_champion() -> str | None:
    """Point ``champion`` back at the previous champion. Returns that version, or None."""
    history = _champion_history()
    if not history:
        return None
    previous, rest = history[-1], history[:-1]
    client = MlflowClient()
    client.set_registered_model_tag(MODEL_NAME, _HISTORY_TAG, ",".join(rest))
    set_alias(CHAMPION, previous)
    return previous


def previous_champion() -> str | None:
    """The version :func:`rollback_champion` would restore, if any."""
    history = _champion_history()
    return history[-1] if history else None


def _champion_history() -> list[str]:
    try:
        model = MlflowClient().get_registered_model(MODEL_NAME)
    except MlflowException:
        return []
    raw = model.tags.get(_HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The metrics logged on the run that produced ``version``."""
    if not version.run_id:
        return {}
    return dict(MlflowClient().get_run(version.run_id).data.metrics)


def get_version(version: str | int) -> ModelVersion | None:
    """A registered version of the model, or None when there is no such version."""
    try:
        return MlflowClient().get_model_version(MODEL_NAME, str(version))
    except MlflowException:
        return None


def log_version_metrics(version: ModelVersion, metrics: Mapping[str, float], *, step: int) -> None:
    """Log metrics on the run that produced ``version`` (e.g. its live scores, day by day)."""
    if not version.run_id:
        return
    client = MlflowClient()
    for key, value in metrics.items():
        client.log_metric(version.run_id, key, float(value), step=step)


def tag_version(version: ModelVersion, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        MlflowClient().set_model_version_tag(MODEL_NAME, version.version, key, value)


def list_versions() -> pl.DataFrame:
    """Registered versions with their aliases, run metrics and tags, newest first."""
    client = MlflowClient()
    try:
        model = client.get_registered_model(MODEL_NAME)
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    except MlflowException:
        return pl.DataFrame()
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: -int(v.version)):
        metrics = version_metrics(v)
        rows.append(
            {
                "version": int(v.version),
                "aliases": ", ".join(sorted(aliases.get(str(v.version), []))),
                "created": pd.Timestamp(v.creation_timestamp, unit="ms").isoformat(),
                "business_date": v.tags.get("business_date", ""),
                "kind": v.tags.get("kind", ""),
                "run_id": v.run_id,
                "acc": metrics.get("eval/acc"),
                "wpe": metrics.get("eval/wpe"),
                "live_acc": metrics.get("live/acc"),
                "live_alert": v.tags.get("live/alert", ""),
                "gate_warning": v.tags.get("gate/warning", ""),
            }
        )
    return pl.DataFrame(rows)
