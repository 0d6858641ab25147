"""What a task sees of its own job when declared with `pass_context=True`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgqueue import db, store
from pgqueue.errors import ClaimLost
from pgqueue.progress import ProgressReport
from pgqueue.types import ClaimedJob

if TYPE_CHECKING:
    import psycopg


_REPORT_CREATION = threading.Lock()
"""Two threads of one task reporting first at once make one report, not two."""


@dataclass(slots=True)
class JobContext:
    job: ClaimedJob
    worker_name: str
    conninfo: str
    _abort: bool = field(default=False, repr=False)
    completed_in_transaction: bool = False
    """Set once `atomic()` committed the job's success with the task's own writes."""
    on_report_pending: Callable[[], None] | None = field(default=None, repr=False)
    """Told when the job's report goes from nothing pending to something (the worker's
    progress writer)."""
    _report: ProgressReport | None = field(default=None, repr=False)

    @property
    def report(self) -> ProgressReport:
        """Progress and meta reported and not yet written (pgqueue.progress); made on first
        use, so a job that reports nothing costs nothing."""
        if self._report is None:
            with _REPORT_CREATION:
                if self._report is None:
                    self._report = ProgressReport(self.on_report_pending)
        return self._report

    @property
    def existing_report(self) -> ProgressReport | None:
        """The report if the task ever reported (None: nothing to write)."""
        return self._report

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def should_abort(self) -> bool:
        """True once the job was cancelled or timed out: long sync tasks check it and return."""
        return self._abort  # a plain flag: set once, read from the task's thread

    def request_abort(self) -> None:
        self._abort = True

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the job is (0 to 1) and, optionally, what it is doing. Cheap enough
        for a tight loop: the latest value is kept in memory and the worker writes it at most
        once per progress interval, and with the job's outcome (`Job.progress`,
        `progress_message`). Raises `InvalidProgress` for a value it cannot store."""
        self.report.set_progress(fraction, message)

    def set_meta(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Merge keys into the job's metadata (`Job.meta`), written like progress. Values must
        survive a JSON round-trip, 64 KiB at most together; raises `InvalidMeta`."""
        self.report.set_meta({**(values or {}), **more})

    @contextmanager
    def atomic(self) -> Iterator[psycopg.Connection]:
        """A transaction that also marks this job succeeded, so the task's writes (enqueueing a
        successor, say) commit exactly when the job does: a crash before the commit reruns the
        task with nothing written, a crash after it cannot rerun it. Raises `ClaimLost` (and
        rolls back) if the job was rescued or cancelled meanwhile. The task's return value is
        not stored for such a job."""
        # A connection for one transaction: nothing worth preparing, and nothing a
        # transaction-mode pooler could hand to another client.
        with db.connect(self.conninfo, autocommit=False, prepare_threshold=None) as conn:
            with db.translated_errors(), conn.transaction():
                yield conn
                pending = self._report.take() if self._report is not None else None
                if pending is not None:  # the last report lands with the outcome
                    db.run_on(conn, store.set_progress([self.job], [pending]))
                landed = db.run_on(conn, store.mark_succeeded(
                    [self.job.id], [self.job.claim_token], [None]))
                if not landed:
                    raise ClaimLost(f"job {self.job.id} attempt {self.job.attempt} lost its "
                                    "claim (rescued or cancelled); its writes were rolled back")
            self.completed_in_transaction = True
