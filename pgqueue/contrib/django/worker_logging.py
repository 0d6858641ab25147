"""Logging for workers started by Django's management commands.

pgqueue's command line prints every log record through one handler on the root logger. A
Django project may already print some records itself: Django 6.1 with ``DEBUG = True`` prints
the ``django`` loggers (among them ``django.tasks``, which logs every Task started and
finished) on its own console handler, and they then reached the root handler too, so each line
came out twice. The root handler here skips a record that a handler below the root has already
emitted.
"""

from __future__ import annotations

import logging

from pgqueue.logs import configure_logging


class NotEmittedBelowRoot(logging.Filter):
    """Pass a record only if no handler of its logger or of an ancestor below the root took
    it (level and filters), so the root handler prints each record once."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            for handler in logger.handlers:
                if record.levelno >= handler.level and handler.filter(record):
                    return False
            if not logger.propagate:
                return False
            logger = logger.parent
        return True


def configure_worker_logging(level: str = "INFO") -> None:
    """pgqueue's log format on the root logger, without repeating what Django prints."""
    configure_logging(level)
    print_each_record_once()


def print_each_record_once() -> None:
    """Add `NotEmittedBelowRoot` to the root logger's handlers."""
    for handler in logging.root.handlers:
        if not any(isinstance(f, NotEmittedBelowRoot) for f in handler.filters):
            handler.addFilter(NotEmittedBelowRoot())
