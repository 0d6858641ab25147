"""django-background-tasks' exceptions (``background_task.exceptions``)."""

from __future__ import annotations

from typing import Any


class BackgroundTaskError(Exception):
    def __init__(self, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.errors = errors


class InvalidTaskError(BackgroundTaskError):
    """Raised by a task, it fails the task at once: no further attempt (as in the library)."""


__all__ = ["BackgroundTaskError", "InvalidTaskError"]
