"""Records outcomes in batches: whatever finished while the previous write was in flight goes
out in the next one, so a lone job is acknowledged at once and a busy worker writes many jobs
per statement. Writes go out on the completer's own connection (reopened after a failure) and
are retried until they land (the job stays `running`, fenced by its claim token, until then)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from pgqueue import store
from pgqueue.db import Call, arun_on
from pgqueue.errors import ConfigurationError, DatabaseUnavailable, UnrecordableOutcome
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling
from pgqueue.worker.connection import DedicatedConnection
from pgqueue.worker.observers import notify_observers
from pgqueue.worker.options import DeleteJobs
from pgqueue.worker.outcome import Outcome, OutcomeKind, describe

logger = logging.getLogger("pgqueue.worker")


class Completer:
    def __init__(self, connection: DedicatedConnection, delete_jobs: DeleteJobs,
                 observers: Sequence[Any] = (),
                 on_failed: Callable[[list[Outcome]], None] | None = None,
                 on_recorded: Callable[[], None] | None = None) -> None:
        self.connection = connection
        self.on_failed = on_failed
        """Given the final failures the database accepted (tasks' on_failure hooks)."""
        self.on_recorded = on_recorded
        """Called once a batch has committed: the running jobs it ended free queue limits."""
        self.observers = observers
        self.delete_jobs = delete_jobs
        self._pending: list[Outcome] = []
        self._has_pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.writes = 0
        """Batches written so far."""

    def submit(self, outcome: Outcome) -> None:
        """Queue an outcome for the next batch (a lost claim is logged when it is refused)."""
        self._pending.append(outcome)
        self._idle.clear()
        self._has_pending.set()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self._has_pending.wait()
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            write_started = time.monotonic()
            try:
                accepted = await self._write_all(batch, backoff)
            except BaseException:
                self._pending[:0] = batch  # a restarted completer writes them first
                raise
            self.writes += 1
            if self.on_recorded is not None:
                self.on_recorded()
            if self.observers:
                notify_observers(self.observers, "outcomes_recorded",
                                 batch, time.monotonic() - write_started)
            if len(accepted) != len(batch):
                self._log_rejected(batch, accepted)
            if self.on_failed is not None:
                failed = [o for o in batch if o.kind == OutcomeKind.FAILED and o.job.id in accepted]
                if failed:
                    self.on_failed(failed)
            if not self._pending:
                self._idle.set()

    async def _write_all(self, batch: list[Outcome], backoff: Backoff) -> set[int]:
        """Write the batch until it lands. An outage is retried with backoff; an outcome the
        database refuses (a value it cannot store) is found by halving the batch and replaced
        by a failure saying why, so it never holds up the outcomes written with it."""
        accepted: set[int] = set()
        chunks = [batch]
        while chunks:
            chunk = chunks.pop()
            try:
                accepted.update(await self._write(chunk))
                backoff.reset()
                continue
            except DatabaseUnavailable as exc:
                raise_if_cancelling()
                await self._back_off(backoff, chunk, exc)
                chunks.append(chunk)
                continue
            except ConfigurationError:
                raise  # not this outcome's fault: the service dies and supervision decides
            except Exception as exc:
                raise_if_cancelling()
                refused = exc
            if any(outcome.progress is not None for outcome in chunk):
                # First without the reports written before the outcomes: progress never
                # costs an outcome (a role without the progress grants, say).
                log_event(logger, logging.ERROR, "progress.write_refused", jobs=len(chunk),
                          error=f"{type(refused).__name__}: {refused}"[:300])
                chunks.append([dataclasses.replace(o, progress=None) for o in chunk])
                continue
            if len(chunk) > 1:
                middle = len(chunk) // 2
                chunks += [chunk[middle:], chunk[:middle]]
            elif chunk[0].error is not None and chunk[0].error.type == UnrecordableOutcome.__name__:
                logger.exception("the database refuses even the failure record of a job")
                await self._back_off(backoff, chunk, refused)
                chunks.append(chunk)
            else:
                chunks.append([_unrecordable(chunk[0], refused)])
        return accepted

    async def _back_off(self, backoff: Backoff, chunk: list[Outcome], exc: Exception) -> None:
        delay = backoff.next_delay()
        if backoff.should_log():
            log_event(logger, logging.WARNING, "completer.write_failed", jobs=len(chunk),
                      retry_in_s=delay, error=f"{type(exc).__name__}: {exc}"[:300])
        await asyncio.sleep(delay)

    def _log_rejected(self, batch: Sequence[Outcome], accepted: set[int]) -> None:
        for outcome in batch:
            if outcome.job.id not in accepted:
                log_event(logger, logging.WARNING, "job.outcome_rejected",
                          job_id=outcome.job.id, attempt=outcome.job.attempt,
                          outcome=outcome.kind, reason="claim lost (rescued or cancelled)")

    def _calls(self, outcomes: Sequence[Outcome]) -> list[Call[list[int]]]:
        by_kind: dict[OutcomeKind, list[Outcome]] = defaultdict(list)
        for outcome in outcomes:
            by_kind[outcome.kind].append(outcome)
        calls: list[Call[list[int]]] = []
        reported = [o for o in outcomes if o.progress is not None]
        if reported:  # first: the job is still running, so the claim token still fences it
            calls.append(store.set_progress([o.job for o in reported],
                                            [o.progress for o in reported if o.progress]))
        for kind, group in by_kind.items():
            ids = [o.job.id for o in group]
            tokens = [o.job.claim_token for o in group]
            deleted = self.delete_jobs == "always" or (
                self.delete_jobs == "successful" and kind == OutcomeKind.SUCCEEDED)
            if deleted and kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED,
                                    OutcomeKind.CANCELLED):
                # Then recorded like any other: the rows the delete keeps (read by a workflow
                # or a waiter); the deleted ones are gone, so the update finds them no more.
                calls.append(store.delete_finished(ids, tokens))
            if kind == OutcomeKind.SUCCEEDED:
                calls.append(store.mark_succeeded(ids, tokens, [o.result_json for o in group]))
            elif kind == OutcomeKind.FAILED:
                calls.append(store.mark_failed(
                    ids, tokens, *_error_columns(group)))
            elif kind == OutcomeKind.CANCELLED:
                calls.append(store.mark_cancelled(ids, tokens))
            elif kind == OutcomeKind.RETRY:
                calls.append(store.retry_later(
                    ids, tokens, [o.retry_delay for o in group],
                    [int(o.refund_attempt) for o in group], *_error_columns(group)))
            else:
                calls.append(store.release_jobs(ids, tokens))
        return calls

    async def _write(self, outcomes: Sequence[Outcome]) -> set[int]:
        calls = self._calls(outcomes)
        if len(calls) == 1:
            return set(await self.connection.run(calls[0]))
        accepted: set[int] = set()
        async with self.connection.transaction() as conn:
            for call in calls:
                landed = await arun_on(conn, call)
                if call.query_name != "set_progress":  # written or not, it decides no outcome
                    accepted.update(landed)
        return accepted


def _unrecordable(outcome: Outcome, refused: Exception) -> Outcome:
    log_event(logger, logging.ERROR, "job.outcome_unrecordable", job_id=outcome.job.id,
              outcome=outcome.kind, error=f"{type(refused).__name__}: {refused}"[:300])
    return Outcome(outcome.job, OutcomeKind.FAILED, error=describe(UnrecordableOutcome(
        f"the database refused this attempt's {outcome.kind} outcome: "
        f"{type(refused).__name__}: {refused}")))


def _error_columns(
    group: Sequence[Outcome],
) -> tuple[list[str | None], list[str | None], list[str | None]]:
    return (
        [o.error.type if o.error else None for o in group],
        [o.error.message if o.error else None for o in group],
        [o.error.traceback if o.error else None for o in group],
    )
