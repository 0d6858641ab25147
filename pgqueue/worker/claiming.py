"""The claim loop of one slot group: batch claims of its queues sized to its free slots (plus
its prefetch), pgqueue.worker.slots."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff
from pgqueue.worker.observers import notify_observers

if TYPE_CHECKING:
    from pgqueue.worker.runner import Worker
    from pgqueue.worker.slots import SlotGroup

logger = logging.getLogger("pgqueue.worker")

RATE_WINDOW_MARGIN = 0.002
"""Seconds slept past a rate limit window's reopening, so the claim never arrives just before
(database and worker clocks tick apart by the round trip)."""


async def claim_loop(worker: Worker, group: SlotGroup) -> None:
    """Claim up to the free slots, start the jobs, repeat; sleep until NOTIFY, the poll or the
    next scheduled job when nothing is due. Returns once the worker stops (or, one-shot, once
    nothing is left)."""
    backoff = Backoff()
    unclaimable = UnclaimableDueJobs(worker.options.poll_interval)
    while not worker.stopping:
        free = await _free_slots(worker, group)
        if worker.stopping:
            return
        group.wake.clear()
        writes_before_claim = worker.completer.writes
        claim_started = time.monotonic()
        try:
            jobs = await worker.claim_connection.run(store.claim_jobs(
                worker_id=worker.identity.require_id(), queues=group.queues, limit=free,
                tasks=worker.served_tasks))
        except DatabaseUnavailable as exc:
            delay = backoff.next_delay()
            if backoff.should_log():
                log_event(logger, logging.WARNING, "worker.claim_failed",
                          retry_in_s=delay, error=str(exc)[:200])
            await worker.wait_for(worker.signals.stop_requested, delay)
            continue
        backoff.reset()
        if worker.observers:
            notify_observers(worker.observers, "jobs_claimed", jobs,
                             time.monotonic() - claim_started)
        for job in jobs:
            worker.start_job(job, group)
        if len(jobs) == free:
            continue
        if worker.options.one_shot:
            if not jobs and not group.running and not group.prefetched:
                # Done only if no outcome was written during the claim: a retry being
                # written was row-locked (skipped) yet may be due now.
                if worker.completer.idle and worker.completer.writes == writes_before_claim:
                    reopens_in = await _rate_limit_reopens_in(worker, group)
                    if reopens_in is None:
                        return
                    # Due jobs wait only for a rate limit's window: run them too.
                    await worker.wait_for(group.wake, reopens_in + RATE_WINDOW_MARGIN)
                    continue
                await worker.completer.wait_idle()
                continue
            group.freed.clear()
            await worker.wait_for(group.freed, worker.options.poll_interval)
            continue
        # Fewer jobs than slots: the due ones are taken, or held back (a limit, a lock, rows
        # another session holds). Asking again at once would find the same.
        if jobs:
            unclaimable.reset()
        timeout = await _idle_timeout(worker, group, unclaimable)
        if unclaimable.backing_off and worker.completer.writes != writes_before_claim:
            continue  # an acknowledgement committed since the claim: it may have freed them
        group.held_back = unclaimable.backing_off
        await worker.wait_for(group.wake, timeout)
        group.held_back = False

async def _free_slots(worker: Worker, group: SlotGroup) -> int:
    """Slots to claim for, once one is free. Jobs finishing in the next loop turns free
    theirs first (until half the slots are free or a turn frees none): a busy worker claims
    batches, not a job at a time, and an idle one claims at once."""
    while group.free <= 0:
        group.freed.clear()
        await group.freed.wait()  # request_stop() sets it too
        if worker.stopping:
            return 0
    free = group.free
    while free * 2 < group.capacity:
        await asyncio.sleep(0)
        freed_meanwhile = group.free - free
        if not freed_meanwhile:
            break
        free += freed_meanwhile
    return free

async def _idle_timeout(
    worker: Worker, group: SlotGroup, unclaimable: UnclaimableDueJobs
) -> float:
    """Sleep until the next scheduled job is due, at most one poll interval. A job "due now"
    that the claim just skipped is locked by another session (a claim in flight, a frozen
    worker's transaction): sleeping 0 would spin on it, so such waits grow from 10 ms."""
    timeout = worker.options.poll_interval
    try:
        next_job = await worker.claim_connection.run(store.seconds_until_next_job(
            queues=group.queues, tasks=worker.served_tasks))
    except DatabaseUnavailable:
        return timeout
    if next_job.seconds is None:
        unclaimable.reset()
        return timeout
    if next_job.seconds > 0:
        unclaimable.reset()
        return min(timeout, next_job.seconds)
    if next_job.rate_reopens_in is not None:
        unclaimable.reset()
        return min(timeout, next_job.rate_reopens_in + RATE_WINDOW_MARGIN)
    return unclaimable.next_wait(woken_by_acks=bool(group.running) or not worker.completer.idle)


async def _rate_limit_reopens_in(worker: Worker, group: SlotGroup) -> float | None:
    """When a rate limit holds this group's due jobs: seconds until its window reopens."""
    try:
        next_job = await worker.claim_connection.run(store.seconds_until_next_job(
            queues=group.queues, tasks=worker.served_tasks))
    except DatabaseUnavailable:
        return None
    return next_job.rate_reopens_in


class UnclaimableDueJobs:
    """Waits after claims that found a due job they could not take: 0, 10 ms, 20 ms, … up
    to the poll interval; a claim that takes jobs, or a job due later, starts over."""

    FIRST_WAIT = 0.01

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self._next = 0.0

    def next_wait(self, *, woken_by_acks: bool = False) -> float:
        """`woken_by_acks`: jobs of this worker are running or being acknowledged, and their
        acknowledgements wake the claim loop (Worker._wake_held_back): no need to try at once."""
        wait = max(self._next, self.FIRST_WAIT) if woken_by_acks else self._next
        self._next = min(self.ceiling, max(self.FIRST_WAIT, wait * 2))
        return wait

    def reset(self) -> None:
        self._next = 0.0

    @property
    def backing_off(self) -> bool:
        """The last claim found due jobs it could not take."""
        return self._next > 0
