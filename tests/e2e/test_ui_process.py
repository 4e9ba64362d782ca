"""``freshcast ui`` stops the Streamlit server it starts when it is told to stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_browser import free_port, wait_healthy


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_command_stops_the_server(tmp_path: Path, signum: int) -> None:
    port = free_port()
    freshcast = Path(sys.executable).with_name("freshcast")
    cmd = [str(freshcast)] if freshcast.is_file() else [sys.executable, "-m", "pipelines.cli"]
    # Its own session, so the signal reaches the command alone, as `kill PID` would; the
    # server must be stopped by the command, not by the signal reaching its process group.
    proc = subprocess.Popen(
        [*cmd, "ui", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "FRESHCAST_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _accepts(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _accepts(port), "the Streamlit server still holds the port"
    finally:
        # Whatever happened, nothing of this test's session outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--host", "0.0.0.0"], {}, "pass --allow-remote"),
        (["--host", "0.0.0.0", "--allow-remote"], {}, "needs FRESHCAST_ADMIN_TOKEN"),
    ],
)
def test_serving_beyond_localhost_needs_a_decision_and_a_token(
    tmp_path: Path, args: list[str], env: dict[str, str], words: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRESHCAST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ui", *args, "--port", str(free_port())],
        env={**clean, "FRESHCAST_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_remote_server_with_a_token_starts(tmp_path: Path) -> None:
    port = free_port()
    freshcast = Path(sys.executable).with_name("freshcast")
    cmd = [str(freshcast)] if freshcast.is_file() else [sys.executable, "-m", "pipelines.cli"]
    proc = subprocess.Popen(
        [*cmd, "ui", "--host", "0.0.0.0", "--allow-remote", "--port", str(port)],
        env={**os.environ, "FRESHCAST_HOME": str(tmp_path), "FRESHCAST_ADMIN_TOKEN": "s3cret"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
