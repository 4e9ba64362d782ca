"""A day that fails the data-quality gate changes nothing until an operator accepts it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import polars as pl
import pytest

from pipelines.data.simulate import SimulationConfig, write_simulation
from pipelines.serving import registry
from pipelines.settings import load_settings
from tests.e2e.cli import run_freshcast

SIM = SimulationConfig(series=40, days=42, eval_days=3, seed=5)
LAST_TRAIN_DAY = "2024-05-08"  # 42 days from 2024-03-28
CORRUPT_DAY = "2024-05-09"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dataset whose first eval day has every sale ×10, and a home that ran the day before."""
    data = tmp_path_factory.mktemp("data")
    write_simulation(SIM, data)
    ev = pl.read_parquet(data / "eval.parquet")
    on_day = pl.col("dt") == CORRUPT_DAY
    ev = ev.with_columns(
        pl.when(on_day)
        .then(pl.col("sale_amount") * 10)
        .otherwise("sale_amount")
        .alias("sale_amount"),
        pl.when(on_day)
        .then(pl.col("hours_sale").list.eval(pl.element() * 10))
        .otherwise("hours_sale")
        .alias("hours_sale"),
    )
    ev.write_parquet(data / "eval.parquet")
    home = tmp_path_factory.mktemp("home")
    first = run_freshcast("run", home=home, data=data)
    assert first.returncode == 0, first.stderr[-3000:]
    return home, data


def _versions(home: Path) -> int:
    settings = load_settings(home=home)
    registry.configure(settings.tracking_uri)
    return registry.list_versions().height


def test_a_corrupt_day_is_quarantined_and_changes_nothing(project: tuple[Path, Path]) -> None:
    home, data = project
    before = _versions(home)
    proc = run_freshcast("run", "--date", CORRUPT_DAY, home=home, data=data)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"day {CORRUPT_DAY} fails the data-quality gate" in proc.stderr
    assert "chain_level" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _versions(home) == before
    assert not (home / "data" / "forecasts" / f"{CORRUPT_DAY}.parquet").exists()
    assert not (home / "data" / "recovered" / f"{CORRUPT_DAY}.parquet").exists()


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []  # noqa: RUF012 - the module's scratch list

    def do_POST(self) -> None:
        _Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_operator_can_accept_the_day_and_the_champion_is_flagged(
    project: tuple[Path, Path],
) -> None:
    """Accepted, the ×10 day is scored against the champion's forecast of it: live acc
    collapses, and the champion is flagged in the log, on its version and at the webhook."""
    home, data = project
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = run_freshcast(
            "run",
            "--date",
            CORRUPT_DAY,
            "--accept-day",
            CORRUPT_DAY,
            home=home,
            data=data,
            FRESHCAST_ALERT_WEBHOOK=f"http://127.0.0.1:{server.server_address[1]}/alerts",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accepted by the operator" in proc.stderr
    assert (home / "data" / "forecasts" / f"{CORRUPT_DAY}.parquet").is_file()
    markers = home / "data" / "jobs" / "daily" / CORRUPT_DAY
    record = json.loads((markers / "ingest.json").read_text())
    assert record["accepted_by_operator"] is True
    assert any(q["check"] == "chain_level" and not q["ok"] for q in record["quality"])
    # Both days' forecasts are in the ledger; the first day's are scored on the corrupt day.
    served = list((home / "data" / "ledger").glob("made_on=*/version=1.parquet"))
    assert len(served) == 2
    live = json.loads((markers / "live.json").read_text())
    assert live["live_acc"]["1"] < 0.5
    assert "champion v1" in live["alert"]
    assert "live acc" in proc.stderr  # the WARNING log line
    assert _Webhook.received
    assert _Webhook.received[0]["version"] == "1"
    settings = load_settings(home=home)
    registry.configure(settings.tracking_uri)
    version = registry.get_version(1)
    assert version is not None
    assert "live acc" in version.tags["live/alert"]
    assert registry.version_metrics(version)["live/acc"] < 0.5
    # The candidate refreshed on the ×10 day is kept out: its next-week forecast is far
    # above the champion's forecast of those days, made before the day arrived.
    gate = json.loads((markers / "gate.json").read_text())
    assert gate["promote"] is False, gate["reason"]
    assert "total" in gate["decision"]["failed_checks"]
    champion = registry.alias_version(registry.CHAMPION)
    assert champion is not None
    assert str(champion.version) == "1"
