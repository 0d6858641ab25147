"""Capped exponential backoff for database outages, with log throttling so a long outage
produces a handful of lines, not a flood."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** min(self.failures - 1, 30))
        return random.uniform(delay / 2, delay)

    def should_log(self) -> bool:
        """Log the 1st, 2nd, 4th, 8th, ... failure of an outage."""
        return self.failures & (self.failures - 1) == 0

    def reset(self) -> None:
        self.failures = 0


def raise_if_cancelling() -> None:
    """The driver may turn a cancellation that hits mid-query into a connection error; a
    service loop that catches that error must still stop when its task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
