"""The app in a real browser: `freshcast ui` on a free port, every page in headless Chromium.

Debian's ``chromium`` package provides the browser (Playwright's own download does not
work offline); `make test` installs it. A missing browser fails the test, it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.home import build_home

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# url path → a heading the page must show
PAGES = {
    "": "Overview",
    "series": "Series explorer",
    "stockouts": "Stockouts & lost demand",
    "forecasts": "Forecasts",
    "models": "Models",
    "jobs": "Jobs",
}

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
DRAWN = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter(e => e.offsetParent !== null);
  return charts.length > 0 && charts.every(e => e.querySelector('canvas, svg'));
}"""


def chromium_path() -> str:
    for candidate in (
        os.environ.get("FRESHCAST_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "chromium is missing: install Debian's chromium package "
        "(`apt-get install -y chromium`, or `make browser`)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"freshcast ui exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"freshcast ui did not become healthy at {url} within {timeout:.0f}s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`freshcast ui` serving a simulated project on a free port; yields its URL."""
    home = tmp_path_factory.mktemp("ui-home")
    before = os.environ.get("FRESHCAST_HOME")
    try:
        build_home(home)
    finally:
        if before is None:
            os.environ.pop("FRESHCAST_HOME", None)
        else:
            os.environ["FRESHCAST_HOME"] = before
    port = free_port()
    env = {**os.environ, "FRESHCAST_HOME": str(home)}
    freshcast = Path(sys.executable).with_name("freshcast")
    cmd = [str(freshcast)] if freshcast.is_file() else [sys.executable, "-m", "pipelines.cli"]
    proc = subprocess.Popen(
        [*cmd, "ui", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.browser
def test_every_page_renders_without_errors(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            for path, heading in PAGES.items():
                page.goto(f"{served}/{path}", wait_until="domcontentloaded")
                page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
                # Wait for the script run to finish...
                page.locator(IDLE).wait_for(timeout=90_000)
                # ...and for every visible chart to be drawn.
                page.wait_for_function(DRAWN, timeout=60_000)
                page.wait_for_timeout(500)
                name = path or "overview"
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                errors = page.locator('[data-testid="stException"]')
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                alerts = page.locator('[data-testid="stAlertContentError"]')
                assert alerts.count() == 0, f"{name}: {alerts.first.inner_text()}"
        finally:
            browser.close()
    assert sorted(p.name for p in shots.iterdir()) == sorted(
        f"{p or 'overview'}.png" for p in PAGES
    )
