"""The worker's observer hook: objects told about claims, acknowledgements and finished jobs
(pgqueue.observe.metrics is one). Each may define any of

    jobs_claimed(jobs: Sequence[ClaimedJob], seconds: float)      after each claim query
    outcomes_recorded(outcomes: Sequence[Outcome], seconds: float) after each completer write
    job_finished(outcome: Outcome, seconds: float)                 after each attempt

They are called on the worker's event loop and must be quick; an observer that raises is logged
and never disturbs the worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pgqueue.logs import log_event

logger = logging.getLogger("pgqueue.worker")


def notify_observers(observers: Sequence[Any], event: str, *args: Any) -> None:
    for observer in observers:
        method = getattr(observer, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception as exc:
            log_event(logger, logging.WARNING, "observer.failed",
                      observer=type(observer).__name__, event=event, error=str(exc)[:200])
