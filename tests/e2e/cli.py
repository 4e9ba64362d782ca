"""Running the ``freshcast`` command in a child process, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_freshcast(
    *args: str, home: Path, data: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``freshcast ARGS`` with a clean FRESHCAST_* environment, the smoke profile, ``home``
    and ``data``; ``extra`` adds variables. Returns the finished process (any exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHCAST_")}
    env |= {"FRESHCAST_HOME": str(home), "FRESHCAST_DATA": str(data), "FRESHCAST_PROFILE": "smoke"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env | extra,
        capture_output=True,
        text=True,
        timeout=600,
    )
