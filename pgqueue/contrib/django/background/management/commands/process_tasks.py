"""``manage.py process_tasks``: django-background-tasks' worker command, running a pgqueue
worker (LISTEN wake-ups; ``--sleep`` is only the safety-net poll interval).

``--duration N`` stops after N seconds (letting running tasks finish), ``--queue`` restricts
to one queue, ``--log-std`` sends stdout/stderr to logging, ``--dev`` reloads on code changes.
``BACKGROUND_TASK_RUN_ASYNC`` / ``BACKGROUND_TASK_ASYNC_THREADS`` set the concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background.settings import app_settings
from pgqueue.contrib.django.worker_logging import print_each_record_once
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker

LOG_LEVELS = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


class _LogWriter:
    def __init__(self, level: int) -> None:
        self.level = level

    def write(self, text: str) -> int:
        if text.strip():
            logging.log(self.level, text.rstrip())
        return len(text)

    def flush(self) -> None:
        pass


class Command(BaseCommand):
    help = "Run tasks that are scheduled to run on the queue"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--duration", type=int, default=0,
                            help="Run task for this many seconds (0 or less to run forever) - "
                                 "default is 0")
        parser.add_argument("--sleep", type=float, default=5.0,
                            help="Sleep for this many seconds before checking for new tasks "
                                 "(if none were found) - default is 5")
        parser.add_argument("--queue", help="Only process tasks on this named queue")
        parser.add_argument("--log-file", help="Log file destination")
        parser.add_argument("--log-std", action="store_true",
                            help="Redirect stdout and stderr to the logging system")
        parser.add_argument("--log-level", choices=LOG_LEVELS,
                            help=f"Set logging level ({', '.join(LOG_LEVELS)})")
        parser.add_argument("--dev", action="store_true",
                            help="Auto-reload your code on changes. Use this only for development")

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["log_level"], options["log_file"], options["log_std"])
        if options["dev"]:
            from django.utils import autoreload

            autoreload.run_with_reloader(self._run, **options)
        else:
            self._run(**options)

    def _configure_logging(self, level: str | None, log_file: str | None, log_std: bool) -> None:
        config: dict[str, Any] = {}
        if level:
            config["level"] = getattr(logging, level)
        if log_file:
            config["filename"] = log_file
        if config:
            logging.basicConfig(**config)
            print_each_record_once()
        if log_std:
            sys.stdout = _LogWriter(logging.INFO)  # type: ignore[assignment]
            sys.stderr = _LogWriter(logging.ERROR)  # type: ignore[assignment]

    def _run(self, **options: Any) -> None:
        concurrency = (app_settings.BACKGROUND_TASK_ASYNC_THREADS
                       if app_settings.BACKGROUND_TASK_RUN_ASYNC else 1)
        worker = Worker(app, WorkerOptions(
            queues=(options["queue"],) if options["queue"] else None,
            concurrency=max(concurrency, 1), poll_interval=max(options["sleep"], 0.1)))

        async def run() -> int:
            if options["duration"] > 0:
                asyncio.get_running_loop().call_later(options["duration"], worker.request_stop)
            return await worker.arun()

        asyncio.run(run())
