"""The daily job's live step: score every kept forecast whose day has arrived, and act on it.

It runs before the model steps, so what it finds changes today's decisions: a champion
whose live accuracy has fallen is flagged (always) or rolled back to the previous champion
(``gate.on_live_drop = rollback``) before today's candidate is made and judged.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import polars as pl

from models.constants import HORIZON
from pipelines.data import io
from pipelines.jobs.alerts import send_alert
from pipelines.jobs.data_steps import DayInputs, history_through
from pipelines.jobs.overrides import rollback_champion
from pipelines.jobs.runner import StepContext
from pipelines.serving import ledger, registry

logger = logging.getLogger("freshcast")
LEDGER_KEYS = ("made_on", "dt", "store_id", "product_id")


def live_step(ctx: StepContext, paths: DayInputs) -> dict[str, Any]:
    """Score the kept forecasts of the last week's target days against their actuals.

    Live acc as of D is the published protocol over target days D−6..D, all horizons, per
    version that forecast them: written to ``data/live/D.parquet`` and logged as
    ``live/acc``, ``live/wpe`` and ``live/coverage`` on each version's own run (one point
    per business date). The serving champion is flagged when its live acc is below its gate
    acc − margin, and judged against the previous champion's shadow forecasts.
    """
    layout = ctx.settings.layout
    first_target = paths.day - timedelta(days=ledger.LIVE_DAYS - 1)
    # Forecasts for those days were made at most HORIZON days before each of them.
    book = ledger.rolling_window(
        ledger.read_ledger(layout.ledger, made_since=first_target - timedelta(days=HORIZON)),
        through=paths.day,
    )
    recovered = io.scan_parquet(layout.recovered(paths.tag)).select(
        "series_id", "dt", "demand_amount"
    )
    actuals = (
        history_through(paths)
        .filter(pl.col("dt") >= first_target)
        .join(recovered, on=["series_id", "dt"], how="left")
        .select(
            "store_id", "product_id", "dt", "sale_amount", "stock_hour6_22_cnt", "demand_amount"
        )
        .collect()
    )
    scores = ledger.score_ledger(book, actuals)
    io.write_parquet(
        scores.with_columns(pl.lit(paths.day).alias("business_date")), layout.live(paths.tag)
    )
    registry.configure(ctx.settings.tracking_uri)
    step = (paths.day - date(1970, 1, 1)).days
    overall = scores.filter((pl.col("target") == "sales_clean") & (pl.col("horizon") == 0))
    live_acc: dict[str, float] = {}
    for row in overall.iter_rows(named=True):
        version = registry.get_version(row["version"])
        if version is None or row["acc"] != row["acc"]:
            continue
        live_acc[row["version"]] = row["acc"]
        registry.log_version_metrics(
            version,
            {"live/acc": row["acc"], "live/wpe": row["wpe"], "live/coverage": row["coverage"]},
            step=step,
        )
    serving = serving_version(book, paths.day)
    alert = _stale_champion(ctx, live_acc, serving, paths.day)
    rollback = _live_rollback(ctx, book, actuals, serving, paths.day)
    return {"live_acc": live_acc, "alert": alert, "rollback": rollback}


def serving_version(book: pl.DataFrame, day: date) -> str | None:
    """The version that served the newest forecast of ``day``: the champion as of D−1.

    Judged, not today's champion: a promotion today has not served a single day yet.
    """
    rows = book.filter((pl.col("dt") == day) & (pl.col("role") == ledger.SERVED))
    if rows.is_empty():
        return None
    return str(rows.sort("made_on").row(-1, named=True)["version"])


def _stale_champion(
    ctx: StepContext, live_acc: dict[str, float], serving: str | None, day: date
) -> str | None:
    """An alert when the serving champion's live acc is below its gate acc − margin."""
    version = None if serving is None else registry.get_version(serving)
    if version is None or serving not in live_acc:
        return None
    live = live_acc[serving]
    gate_acc = registry.version_metrics(version).get("eval/acc")
    margin = ctx.settings.gate.live_margin
    if gate_acc is None or live >= gate_acc - margin:
        return None
    message = (
        f"champion v{serving}: live acc {live:.4f} over the week through {day} is more "
        f"than {margin} below the {gate_acc:.4f} the gate measured"
    )
    registry.tag_version(version, {"live/alert": message})
    send_alert(
        message,
        webhook=ctx.settings.alert_webhook,
        payload={"version": serving, "live_acc": live, "gate_acc": gate_acc, "day": day},
    )
    return message


def head_to_head(
    book: pl.DataFrame, actuals: pl.DataFrame, served: str, shadow: str
) -> tuple[float, float] | None:
    """Live acc of the served version and of the shadow, on the forecasts both made (same
    made-on day, same target rows), or None when they share no scored day."""
    mine = book.filter((pl.col("version") == served) & (pl.col("role") == ledger.SERVED))
    theirs = book.filter((pl.col("version") == shadow) & (pl.col("role") == ledger.SHADOW))
    mine = mine.join(theirs.select(LEDGER_KEYS), on=list(LEDGER_KEYS), how="semi")
    theirs = theirs.join(mine.select(LEDGER_KEYS), on=list(LEDGER_KEYS), how="semi")
    scores = ledger.score_ledger(pl.concat([mine, theirs]), actuals).filter(
        (pl.col("target") == "sales_clean") & (pl.col("horizon") == 0)
    )
    acc = dict(zip(scores["version"].to_list(), scores["acc"].to_list(), strict=True))
    pair = (acc.get(served), acc.get(shadow))
    if pair[0] is None or pair[1] is None or pair[0] != pair[0] or pair[1] != pair[1]:
        return None
    return float(pair[0]), float(pair[1])


def _live_rollback(
    ctx: StepContext, book: pl.DataFrame, actuals: pl.DataFrame, serving: str | None, day: date
) -> str | None:
    """Roll the champion back when its live acc is below the previous champion's (shadow)
    on the same days by more than the margin, with ``gate.on_live_drop = rollback``.

    Only the serving champion is judged: one promoted today has not served yet.
    """
    gate = ctx.settings.gate
    champion = registry.alias_version(registry.CHAMPION)
    previous = registry.previous_champion()
    if champion is None or previous is None or serving != str(champion.version):
        return None
    pair = head_to_head(book, actuals, serving, previous)
    if pair is None or pair[0] >= pair[1] - gate.live_margin:
        return None
    message = (
        f"champion v{serving}: live acc {pair[0]:.4f} over the week through {day} is more "
        f"than {gate.live_margin} below the previous champion v{previous}'s {pair[1]:.4f} "
        "on the same days"
    )
    if gate.on_live_drop != "rollback":
        logger.warning("%s (gate.on_live_drop = alert: not rolled back)", message)
        return None
    rollback_champion(ctx.settings, f"live evidence: {message}")
    action = f"{message}; rolled back to v{previous}"
    logger.warning(action)
    version = registry.get_version(serving)
    if version is not None:
        registry.tag_version(version, {"live/alert": action, "live/rolled_back": day.isoformat()})
    send_alert(
        action,
        webhook=ctx.settings.alert_webhook,
        payload={"version": serving, "restored": previous, "live_acc": pair[0], "day": day},
    )
    return action
