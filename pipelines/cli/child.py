"""Run a long-lived child process (the Streamlit server) that ends when the command ends.

``subprocess.call`` alone leaves the child running when the command is sent SIGTERM (a
service manager, ``kill``), and the orphaned server keeps its port. Here SIGTERM and SIGINT
are passed on to the child; if it has not exited within a grace period it is killed.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from types import FrameType

GRACE_SECONDS = 10.0


def run_until_stopped(cmd: Sequence[str], *, grace: float = GRACE_SECONDS) -> int:
    """Run ``cmd``; stop it when this process is told to stop. Returns its exit code."""
    child = subprocess.Popen(list(cmd))
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = child.wait(timeout=grace if stopping else None)
                break
            except subprocess.TimeoutExpired:
                child.kill()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:  # an exception on the way out: never leave it behind
            child.kill()
            child.wait()
    # Stopped on request is a clean stop, whatever the child's own exit code says.
    return 0 if stopping else code
