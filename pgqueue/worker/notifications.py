"""Reading the wake-up NOTIFY payload: which queues got jobs (empty payload: maybe any)."""

from __future__ import annotations

import json
from collections.abc import Sequence


def concerns_queues(payload: str, queues: Sequence[str] | None) -> bool:
    if queues is None or not payload:
        return True
    try:
        notified = json.loads(payload).get("queues") or []
    except (ValueError, AttributeError):
        return True
    return any(queue in notified for queue in queues)
