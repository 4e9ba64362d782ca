"""Runtime settings, from environment variables with defaults (frozen pydantic model).

Environment:
    FRESHCAST_DATA: the dataset folder (hub layout). Default: ``data/raw``.
    FRESHCAST_HOME: the project folder that holds ``data/`` and ``mlruns/``. Default: cwd.
    FRESHCAST_TRACKING_URI: an MLflow tracking URI, e.g. a team's server.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """Where freshcast reads and writes. Build with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True)

    home: Path
    data_dir: Path
    tracking_uri: str

    @property
    def work_dir(self) -> Path:
        """Job outputs: recovered/, forecasts/, replay/ and models/ live here."""
        return self.home / "data"

    @property
    def mlruns_dir(self) -> Path:
        return self.home / "mlruns"


def load_settings() -> Settings:
    """Settings from the environment; nothing is created on disk."""
    home = Path(os.environ.get("FRESHCAST_HOME", ".")).resolve()
    data_dir = Path(os.environ.get("FRESHCAST_DATA", home / "data" / "raw"))
    uri = os.environ.get("FRESHCAST_TRACKING_URI", f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    return Settings(home=home, data_dir=data_dir, tracking_uri=uri)
