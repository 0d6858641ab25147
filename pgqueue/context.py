"""What a task sees of its own job when declared with `pass_context=True`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pgqueue.types import ClaimedJob


@dataclass(slots=True)
class JobContext:
    job: ClaimedJob
    worker_name: str
    _abort: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def should_abort(self) -> bool:
        """True once the job was cancelled or timed out: long sync tasks check it and return."""
        return self._abort.is_set()

    def request_abort(self) -> None:
        self._abort.set()
