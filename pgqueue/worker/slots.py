"""A worker's slots, grouped by queue. `-q emails:5,reports:1` gives each of those queues
slots of its own inside one process, so a flood of reports never takes the slots emails need
(procrastinate #1552); queues listed without a count share the worker's `concurrency` slots.

Each group has its own claim loop (pgqueue.worker.claiming) that claims only its queues, only
as many jobs as its free slots (plus its prefetch), and sleeps on its own event until one of
its jobs ends. All groups share the worker's connections, completer and heartbeat.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from pgqueue.types import ClaimedJob


@dataclass(eq=False)
class SlotGroup:
    queues: tuple[str, ...] | None
    """The queues these slots claim from; None: every queue."""
    concurrency: int
    """Jobs of these queues running at once in this worker."""
    prefetch: int = 0
    """Jobs claimed beyond `concurrency`, held until one of these slots frees."""
    running: set[int] = field(default_factory=set)
    """Ids of this group's running jobs."""
    prefetched: collections.deque[ClaimedJob] = field(default_factory=collections.deque)
    freed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a job of this group ends (and on a stop request)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when jobs of these queues may be due (NOTIFY, reconnection, stop request, and for a
    held-back group the worker's own acknowledgements)."""
    held_back: bool = False
    """The last claim left due jobs behind (a queue limit, a lock held elsewhere): the group
    waits for the next acknowledgement this worker commits, which may free what held them."""

    @property
    def capacity(self) -> int:
        return self.concurrency + self.prefetch

    @property
    def free(self) -> int:
        return self.capacity - len(self.running) - len(self.prefetched)

    @property
    def has_room_to_run(self) -> bool:
        return len(self.running) < self.concurrency

    @property
    def label(self) -> str:
        return ",".join(self.queues) if self.queues else "*"
