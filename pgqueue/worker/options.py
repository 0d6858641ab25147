"""Worker settings, validated once, each with its default documented here."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from pgqueue.errors import ConfigurationError
from pgqueue.maintenance.retention import RetentionPolicy
from pgqueue.tasks import POOLS, Pool
from pgqueue.validation import MAX_QUEUE_NAME, check_name

DeleteJobs = Literal["never", "successful", "always"]
StartMethod = Literal["forkserver", "spawn"]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    queues: tuple[str, ...] | None = None
    """Queues to claim from; None claims from every queue."""
    concurrency: int = 1
    """Jobs run at once (async tasks on the loop, sync tasks in a thread pool), shared by the
    queues that have no slots of their own (`queue_slots`)."""
    queue_slots: Mapping[str, int] | None = None
    """Slots of its own for a queue, e.g. {"emails": 5, "reports": 1} (CLI `-q
    emails:5,reports:1`): each runs that many of its jobs at once, whatever the other queues
    hold. Every queue named here must be in `queues`."""
    prefetch: int = 0
    """Jobs claimed beyond `concurrency` and held until a slot frees, so the next job starts
    without waiting for a claim; other workers cannot take them meanwhile (docs/worker.md)."""
    name: str | None = None
    """Shown in the workers table and logs; defaults to host-pid."""
    one_shot: bool = False
    """Run every due job, then exit 0 once none is left. Due jobs a rate limit holds back are
    waited for (the window reopens within its period); jobs a concurrency limit or a lock holds
    for another worker's running jobs are left to that worker."""
    listen: bool = True
    """Wake on NOTIFY; without it the worker only polls."""
    poll_interval: float = 5.0
    """Seconds between safety-net polls when no notification arrives."""
    shutdown_timeout: float = 30.0
    """Seconds running jobs get to finish after SIGTERM before they are put back to queued."""
    delete_jobs: DeleteJobs = "never"
    """Delete finished rows instead of keeping them: never, successful ones, or always."""
    heartbeat_interval: float = 5.0
    """Seconds between heartbeats (also how often stalled jobs of dead workers are rescued)."""
    heartbeat_timeout: float = 30.0
    """A worker silent this long is dead; its running jobs are rescued."""
    listener_ping_interval: float = 10.0
    """Seconds of silence after which the LISTEN connection is pinged."""
    progress_interval: float = 1.0
    """Seconds between writes of what running tasks report with `context.set_progress` /
    `set_meta` (one statement for all of this worker's jobs); the value pending when a job ends
    is written with its outcome whatever this says (pgqueue.worker.progress)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (pgqueue.observe.metrics); None: no endpoint."""
    metrics_addr: str = "127.0.0.1"
    """The address the metrics endpoint binds: this host only by default; "0.0.0.0" (or
    "::") for every interface, e.g. a container scraped from outside."""
    stuck_after: float = 10.0
    """A task still running this long after it was told to stop (cancel, timeout) is logged
    as stuck; its slot stays taken until it returns."""
    prune_every: float | None = 3600.0
    """Seconds between retention passes (pgqueue.maintenance.retention); None or 0: never."""
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    """How long finished jobs are kept, per state."""
    periodic: bool = True
    """Run the periodic scheduler when the app declares schedules (see docs/periodic.md)."""
    pool: Pool = "thread"
    """Where plain-function tasks run: "thread" (`concurrency` threads) or "process"
    (`concurrency` child processes, pgqueue.worker.process_pool); async tasks always run on
    the event loop, and a task's own `pool=` overrides this."""
    max_tasks_per_child: int | None = None
    """A child process is replaced after running this many jobs; None: never."""
    max_memory_per_child: int | None = None
    """A child process is replaced after a job that left it holding this many MiB or more
    (resident memory); None: never."""
    app_path: str | None = None
    """`module:attr` child processes import to load the app (the CLI's --app); None: looked up
    among the imported modules when a child is first needed."""
    child_start_method: StartMethod = "forkserver"
    """How child processes start: "forkserver" (forked from a small server process that
    imported the app once: milliseconds) or "spawn" (a fresh interpreter each). Both are safe
    beside the worker's threads, unlike a plain fork."""

    def __post_init__(self) -> None:
        if self.queues is not None:
            queues = tuple(self.queues)
            if not queues:
                raise ConfigurationError("queues must name at least one queue (or be None)")
            for queue in queues:
                check_name(queue, "queue", MAX_QUEUE_NAME)
            object.__setattr__(self, "queues", queues)
        self._check_queue_slots()
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, not {self.concurrency!r}")
        if not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ConfigurationError(f"prefetch must be an int >= 0, not {self.prefetch!r}")
        for field_name in ("poll_interval", "heartbeat_interval", "heartbeat_timeout",
                           "listener_ping_interval", "progress_interval"):
            if not getattr(self, field_name) > 0:
                raise ConfigurationError(f"{field_name} must be > 0 seconds")
        if self.shutdown_timeout < 0:
            raise ConfigurationError("shutdown_timeout must be >= 0 seconds")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ConfigurationError("heartbeat_timeout must exceed heartbeat_interval")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ConfigurationError(f"metrics_port must be 1-65535, not {self.metrics_port!r}")
        if self.delete_jobs not in ("never", "successful", "always"):
            raise ConfigurationError(
                f"delete_jobs must be never, successful or always, not {self.delete_jobs!r}"
            )
        self._check_pool_options()

    def _check_pool_options(self) -> None:
        if self.pool not in POOLS:
            raise ConfigurationError(f"pool must be thread or process, not {self.pool!r}")
        for field_name in ("max_tasks_per_child", "max_memory_per_child"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{field_name} must be an int >= 1 or None, "
                                         f"not {value!r}")
        if self.child_start_method not in ("forkserver", "spawn"):
            raise ConfigurationError("child_start_method must be forkserver or spawn, not "
                                     f"{self.child_start_method!r}")

    def _check_queue_slots(self) -> None:
        if self.queue_slots is None:
            return
        if self.queues is None:
            raise ConfigurationError("queue_slots needs queues: list the queues to claim from")
        for queue, slots in self.queue_slots.items():
            if queue not in self.queues:
                raise ConfigurationError(f"queue_slots names {queue!r}, which is not in queues")
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
                raise ConfigurationError(
                    f"queue_slots[{queue!r}] must be an int >= 1, not {slots!r}")
        object.__setattr__(self, "queue_slots", MappingProxyType(dict(self.queue_slots)))

    @property
    def slot_groups(self) -> list[tuple[tuple[str, ...] | None, int]]:
        """(queues, slots) per group: one per queue with slots of its own, then one for the
        queues sharing `concurrency` (none if every queue has its own)."""
        own = dict(self.queue_slots or {})
        groups: list[tuple[tuple[str, ...] | None, int]] = [((q,), n) for q, n in own.items()]
        shared = None if self.queues is None else tuple(q for q in self.queues if q not in own)
        if shared is None or shared:
            groups.append((shared, self.concurrency))
        return groups

    @property
    def total_slots(self) -> int:
        """Jobs this worker may run at once, over every group."""
        return sum(slots for _queues, slots in self.slot_groups)

    @property
    def queues_label(self) -> str:
        """The queues as the CLI spells them: `emails:5,reports:1,default`, or `*`."""
        if self.queues is None:
            return "*"
        own = self.queue_slots or {}
        return ",".join(f"{q}:{own[q]}" if q in own else q for q in self.queues)

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}-{os.getpid()}"
