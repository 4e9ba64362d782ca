"""Alerts a person must see: a WARNING log line, and a JSON POST to a webhook when one is set.

The UI banner and the version tag are written by the step that raises the alert; this only
delivers it. A webhook that fails is logged and never fails the job: the alert is already
in the log, on the version and on the page.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

logger = logging.getLogger("freshcast")
WEBHOOK_TIMEOUT_SECONDS = 5.0


def send_alert(message: str, *, webhook: str | None, payload: dict[str, Any]) -> bool:
    """Log ``message`` at WARNING and POST ``payload`` to ``webhook``; True if it was delivered."""
    logger.warning(message)
    if not webhook:
        return False
    body = json.dumps({"text": message, **payload}, default=str).encode()
    request = urllib.request.Request(
        webhook, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            return bool(200 <= response.status < 300)
    except OSError as exc:
        logger.warning("the alert webhook %s failed: %s", webhook, exc)
        return False
