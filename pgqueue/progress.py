"""Progress and metadata a running task reports (`context.set_progress`, `context.set_meta`),
held in memory until its worker writes them.

A task may report in a tight loop and only the latest value matters, so a report costs a lock
and a few comparisons here; the worker writes what is pending at most once per progress
interval, for all its running jobs in one statement (pgqueue.worker.progress), and once more
in the job's acknowledgement, so the last value is never lost. Values are checked when they
are reported, in the task, where a bad one can be fixed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pgqueue.errors import InvalidArguments, InvalidMeta, InvalidProgress
from pgqueue.validation import to_json

MAX_PROGRESS_MESSAGE = 1000
"""Characters; a progress message is a line for people, not a log."""
MAX_META_BYTES = 64 * 1024
"""The JSON of every key one attempt sets with set_meta, together."""


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """What was reported since the last write: `progress` None when only meta changed, `meta`
    None when only progress did (keys to merge into the job's meta otherwise)."""

    progress: float | None = None
    message: str | None = None
    meta: Mapping[str, Any] | None = None

    def under(self, newer: ProgressUpdate) -> ProgressUpdate:
        """This older update with `newer` reported after it: newer values win, meta keys merge."""
        progress, message = ((self.progress, self.message) if newer.progress is None
                             else (newer.progress, newer.message))
        meta = self.meta if newer.meta is None else (
            {**(self.meta or {}), **newer.meta})
        return ProgressUpdate(progress, message, meta)

    def meta_json(self) -> str | None:
        return None if self.meta is None else to_json(dict(self.meta), "job metadata")

    def to_frame(self) -> dict[str, Any]:
        """As a JSON object (a process-pool child sends it to its worker)."""
        return {"progress": self.progress, "message": self.message,
                "meta": None if self.meta is None else dict(self.meta)}

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> ProgressUpdate:
        return cls(frame.get("progress"), frame.get("message"), frame.get("meta"))


def check_progress(fraction: Any, message: Any) -> tuple[float, str | None]:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise InvalidProgress(f"progress must be a number from 0 to 1, not {fraction!r}")
    fraction = float(fraction)
    if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
        raise InvalidProgress(f"progress must be a finite number from 0 to 1, not {fraction!r}")
    if message is None:
        return fraction, None
    if not isinstance(message, str):
        raise InvalidProgress(f"a progress message is a str, not {type(message).__name__}")
    if len(message) > MAX_PROGRESS_MESSAGE:
        raise InvalidProgress(f"a progress message holds at most {MAX_PROGRESS_MESSAGE} "
                              f"characters, not {len(message)}")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidProgress(f"a progress message must be valid text: {exc}") from None
    return fraction, message.replace("\x00", "\\x00")  # Postgres text holds no NUL


class ProgressReport:
    """One attempt's pending progress and meta. Reported from the task's thread (or its loop),
    taken by the worker's loop: a lock keeps each report whole. `on_pending` is called when the
    report goes from nothing pending to something (once per write, not once per call)."""

    def __init__(self, on_pending: Callable[[], None] | None = None) -> None:
        self.on_pending = on_pending
        self._lock = threading.Lock()
        self._pending: ProgressUpdate | None = None
        self._meta_set: dict[str, Any] = {}
        """Every key this attempt set (for the size cap)."""
        self._closed = False

    def set_progress(self, fraction: Any, message: Any = None) -> None:
        update = ProgressUpdate(*check_progress(fraction, message))
        self._add(update)

    def set_meta(self, values: Mapping[str, Any]) -> None:
        if not all(isinstance(key, str) for key in values):
            raise InvalidMeta("job metadata keys are str")
        values = dict(values)
        with self._lock:
            merged = {**self._meta_set, **values}
        try:
            size = len(to_json(merged, "job metadata").encode())
        except InvalidArguments as exc:
            raise InvalidMeta(str(exc)) from None
        if size > MAX_META_BYTES:
            raise InvalidMeta(f"job metadata would hold {size} bytes of JSON; the cap is "
                              f"{MAX_META_BYTES}")
        with self._lock:
            self._meta_set.update(values)
        self._add(ProgressUpdate(meta=values))

    def add(self, update: ProgressUpdate) -> None:
        """An update already checked (sent by a process-pool child)."""
        self._add(update)

    def _add(self, update: ProgressUpdate) -> None:
        with self._lock:
            if self._closed:
                return  # reported after its job ended (from a thread the task left behind)
            was_pending = self._pending is not None
            self._pending = update if self._pending is None else self._pending.under(update)
        if not was_pending and self.on_pending is not None:
            self.on_pending()

    def take(self) -> ProgressUpdate | None:
        """What is pending, which is then no longer pending."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def put_back(self, update: ProgressUpdate) -> None:
        """A taken update whose write failed: pending again, under anything reported since."""
        with self._lock:
            if self._closed:
                return
            self._pending = update if self._pending is None else update.under(self._pending)

    def close(self) -> ProgressUpdate | None:
        """The job has ended: what is pending (written with its acknowledgement); later
        reports are ignored."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, None
        return pending
