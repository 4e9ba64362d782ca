"""The forecast ledger: append-only partitions, and live scores checked by hand."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.jobs.alerts import send_alert
from pipelines.serving import ledger

MADE_ON = date(2024, 6, 1)


def _forecast(made_on: date, scale: float, n_series: int = 4) -> pl.DataFrame:
    rows = []
    for s in range(n_series):
        for h in range(1, 8):
            y = scale * (s + 1) * h
            rows.append(
                {
                    "store_id": s,
                    "product_id": 10 + s,
                    "dt": made_on + timedelta(days=h),
                    "yhat": y,
                    "yhat_p10": 0.5 * y,
                    "yhat_p50": y,
                    "yhat_p90": 1.5 * y,
                }
            )
    return pl.DataFrame(rows)


def test_partitions_are_per_day_and_version_and_rewrites_are_idempotent(tmp_path: Path) -> None:
    a = ledger.append_forecasts(tmp_path, _forecast(MADE_ON, 1.0), version="1", made_on=MADE_ON)
    later = MADE_ON + timedelta(days=1)
    ledger.append_forecasts(tmp_path, _forecast(later, 2.0), version="2", made_on=later)
    assert a == tmp_path / "made_on=2024-06-01" / "version=1.parquet"
    assert ledger.read_ledger(tmp_path).height == 2 * 4 * 7
    ledger.append_forecasts(tmp_path, _forecast(MADE_ON, 1.0), version="1", made_on=MADE_ON)
    book = ledger.read_ledger(tmp_path)
    assert book.height == 2 * 4 * 7
    assert set(book["version"]) == {"1", "2"}
    assert ledger.read_ledger(tmp_path, made_since=later)["version"].unique().to_list() == ["2"]
    assert ledger.read_ledger(tmp_path / "none").height == 0


def test_live_scores_match_a_hand_computation(tmp_path: Path) -> None:
    ledger.append_forecasts(tmp_path, _forecast(MADE_ON, 1.0), version="1", made_on=MADE_ON)
    book = ledger.read_ledger(tmp_path)
    rng = np.random.default_rng(0)
    actuals = book.select("store_id", "product_id", "dt").with_columns(
        pl.Series("sale_amount", rng.gamma(2.0, 3.0, book.height)),
        pl.Series("stock_hour6_22_cnt", rng.integers(0, 2, book.height), dtype=pl.Int32),
        pl.Series("demand_amount", rng.gamma(2.0, 3.5, book.height)),
    )
    # Only days that have arrived are scored: drop the last two target days.
    arrived = actuals.filter(pl.col("dt") <= MADE_ON + timedelta(days=5))
    scores = ledger.score_ledger(book, arrived)
    j = book.join(arrived, on=["store_id", "product_id", "dt"])
    clean = j.filter(pl.col("stock_hour6_22_cnt") == 0)
    accs, wpes = [], []
    for _, day in clean.group_by("dt"):
        y, f = day["sale_amount"].to_numpy(), day["yhat"].to_numpy()
        accs.append(1 - np.abs(f - y).sum() / np.abs(y).sum())
        wpes.append((f - y).sum() / np.abs(y).sum())
    overall = scores.filter((pl.col("target") == "sales_clean") & (pl.col("horizon") == 0)).row(
        0, named=True
    )
    assert overall["acc"] == pytest.approx(np.mean(accs))
    assert overall["wpe"] == pytest.approx(np.mean(wpes))
    y = clean["sale_amount"].to_numpy()
    inside = (y >= clean["yhat_p10"].to_numpy()) & (y <= clean["yhat_p90"].to_numpy())
    assert overall["coverage"] == pytest.approx(inside.mean())
    assert overall["days"] == 5
    horizons = scores.filter(pl.col("target") == "recovered")["horizon"].to_list()
    assert horizons == [0, 1, 2, 3, 4, 5]  # per horizon day: h = dt - made_on
    h2 = scores.filter((pl.col("target") == "recovered") & (pl.col("horizon") == 2)).row(
        0, named=True
    )
    day2 = j.filter(pl.col("dt") == MADE_ON + timedelta(days=2))
    y2, f2 = day2["demand_amount"].to_numpy(), day2["yhat"].to_numpy()
    assert h2["acc"] == pytest.approx(1 - np.abs(f2 - y2).sum() / y2.sum())


def test_rolling_window_keeps_the_last_week_of_target_days(tmp_path: Path) -> None:
    ledger.append_forecasts(tmp_path, _forecast(MADE_ON, 1.0), version="1", made_on=MADE_ON)
    book = ledger.read_ledger(tmp_path)
    through = MADE_ON + timedelta(days=9)
    kept = ledger.rolling_window(book, through=through)
    assert kept["dt"].min() == through - timedelta(days=6)


class _Catcher(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []  # noqa: RUF012 - one test's scratch list

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Catcher.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_alert_reaches_its_webhook_and_a_dead_one_does_not_fail(caplog) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Catcher)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with caplog.at_level("WARNING", logger="freshcast"):
        assert send_alert("live acc fell", webhook=url, payload={"version": "3"})
    thread.join(timeout=10)
    server.server_close()
    assert _Catcher.received == [{"text": "live acc fell", "version": "3"}]
    assert "live acc fell" in caplog.text
    # Nothing listens there any more: logged, not raised.
    assert not send_alert("again", webhook=url, payload={})
    assert "webhook" in caplog.text
