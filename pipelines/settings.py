"""Runtime settings, from environment variables with defaults (a frozen pydantic model).

Environment:
    FRESHCAST_HOME: the project folder that holds ``data/`` and ``mlruns/``. Default: cwd.
    FRESHCAST_DATA: the dataset folder (hub layout). Default: ``data/raw``.
    FRESHCAST_TRACKING_URI: an MLflow tracking URI, e.g. a team's server.
    FRESHCAST_DAILY_CRON, FRESHCAST_RETRAIN_CRON: the schedules (5-field cron).
    FRESHCAST_ALERT_WEBHOOK: a URL that live-accuracy alerts are POSTed to as JSON.
    FRESHCAST_ADMIN_TOKEN: the token the app asks for before promote or rollback.
    FRESHCAST_QUALITY_<NAME>: a bound of the data-quality gate, e.g.
        FRESHCAST_QUALITY_CHAIN_LEVEL_MAX=2.5 (names: :class:`QualitySettings`).
    FRESHCAST_GATE_<NAME>: a setting of the promotion gate, e.g.
        FRESHCAST_GATE_ON_LIVE_DROP=rollback (names: :class:`GateSettings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.data.layout import Layout


class GateSettings(BaseModel):
    """The promotion gate (see :mod:`pipelines.jobs.gate`), judged on the same window as the
    champion: acc ≥ champion's − ``acc_tolerance``, |wpe| ≤ champion's |wpe| +
    ``wpe_tolerance``, and forecasts of the next week that pass the sanity checks."""

    model_config = ConfigDict(frozen=True)

    acc_tolerance: float = Field(0.005, ge=0, le=1)
    wpe_tolerance: float = Field(0.02, ge=0, le=1)
    # An absolute bias cap: a champion past it is promoted with a visible warning, not blocked
    # (a week can break it on its own, see docs/forecasting.md).
    wpe_limit: float = Field(0.10, gt=0, le=1)
    # Sanity checks of the candidate's next-week forecasts against the champion's:
    # their total within ±total_band, and the per-series rank correlation ≥ rank_floor.
    # With no champion the reference is last week's demand, a looser one: twice the band.
    total_band: float = Field(0.15, gt=0)
    rank_floor: float = Field(0.8, ge=-1, le=1)
    # The champion is flagged when its rolling 7-day live acc falls this far below the acc
    # the gate measured for it, or (with on_live_drop = rollback) rolled back when it falls
    # this far below the previous champion's live acc on the same days.
    live_margin: float = Field(0.05, ge=0, le=1)
    on_live_drop: Literal["alert", "rollback"] = "alert"


class QualitySettings(BaseModel):
    """Bounds of the data-quality gate (see :class:`pipelines.data.quality.QualityBounds`)."""

    model_config = ConfigDict(frozen=True)

    chain_level_min: float = Field(0.5, gt=0)
    chain_level_max: float = Field(2.0, gt=0)
    series_level_min: float = Field(0.5, gt=0)
    series_level_max: float = Field(2.0, gt=0)
    zero_hours: float = Field(0.25, ge=0, le=1)
    stockout_share: float = Field(0.30, ge=0, le=1)
    missing_series: float = Field(0.10, ge=0, le=1)
    covariates: float = Field(0.02, ge=0, le=1)


class Settings(BaseModel):
    """Where freshcast reads and writes, and how its jobs behave. Build with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True)

    home: Path
    data_dir: Path
    tracking_uri: str
    recovery_method: str = "lgbm"
    forecast_model: str = "lgbm"
    gate: GateSettings = GateSettings()
    quality: QualitySettings = QualitySettings()
    daily_cron: str = "30 5 * * *"
    retrain_cron: str = "0 3 * * 0"
    # A smaller model configuration for tests and smoke runs.
    profile: str = "default"
    # Where a live-accuracy alert is POSTed as JSON (none: the log, the UI and a tag only).
    alert_webhook: str | None = None
    # Required for promote and rollback in the app when it is served beyond localhost.
    admin_token: str | None = None

    @property
    def layout(self) -> Layout:
        """Every path under ``home`` (see :mod:`pipelines.data.layout`)."""
        return Layout(self.home)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``overrides``; nothing is created on disk."""
    env = os.environ
    home = Path(str(overrides.get("home") or env.get("FRESHCAST_HOME", "."))).resolve()
    layout = Layout(home)
    values: dict[str, object] = {
        "home": home,
        "data_dir": Path(env.get("FRESHCAST_DATA", layout.raw)),
        "tracking_uri": env.get("FRESHCAST_TRACKING_URI", layout.default_tracking_uri),
    }
    for key, var in (
        ("daily_cron", "FRESHCAST_DAILY_CRON"),
        ("retrain_cron", "FRESHCAST_RETRAIN_CRON"),
        ("profile", "FRESHCAST_PROFILE"),
        ("recovery_method", "FRESHCAST_RECOVERY_METHOD"),
        ("forecast_model", "FRESHCAST_FORECAST_MODEL"),
        ("alert_webhook", "FRESHCAST_ALERT_WEBHOOK"),
        ("admin_token", "FRESHCAST_ADMIN_TOKEN"),
    ):
        if var in env:
            values[key] = env[var]
    for key, group in (("quality", QualitySettings), ("gate", GateSettings)):
        prefix = f"FRESHCAST_{key.upper()}_"
        given = {
            n: env[prefix + n.upper()] for n in group.model_fields if prefix + n.upper() in env
        }
        if given:
            values[key] = group.model_validate(given)
    values.update(overrides)
    return Settings.model_validate(values)
