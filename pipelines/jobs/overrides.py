"""Human overrides of the gate: promote a version or roll the champion back, logged to MLflow."""

from __future__ import annotations

import mlflow

from pipelines.errors import FreshcastError
from pipelines.jobs.locks import registry_lock
from pipelines.serving import registry
from pipelines.settings import Settings


def _log_override(settings: Settings, action: str, version: str, reason: str) -> None:
    experiment = registry.ensure_experiment("overrides", settings.layout.artifacts)
    with mlflow.start_run(experiment_id=experiment, run_name=f"{action} v{version}"):
        mlflow.set_tags({"action": action, "version": version, "reason": reason})
        mlflow.log_param("version", version)


def promote_version(settings: Settings, version: int, reason: str) -> str:
    """Make ``version`` champion by hand, bypassing the gate; the override is logged."""
    registry.configure(settings.tracking_uri)
    versions = registry.list_versions()
    if versions.is_empty() or version not in versions["version"].to_list():
        raise FreshcastError(f"no registered version {version} of {registry.MODEL_NAME}")
    with registry_lock(settings):
        registry.set_champion(version)
    _log_override(settings, "promote", str(version), reason)
    return str(version)


def rollback_champion(settings: Settings, reason: str) -> str:
    """Point ``champion`` back at the previous champion; the override is logged."""
    registry.configure(settings.tracking_uri)
    with registry_lock(settings):
        previous = registry.rollback_champion()
    if previous is None:
        raise FreshcastError("there is no previous champion to roll back to")
    _log_override(settings, "rollback", previous, reason)
    return previous
