"""``manage.py pgqueue worker|defer|jobs|retry|cancel|stats|healthcheck|migrate``: the pgqueue CLI
on the project's app, with exactly its flags (both are built by `pgqueue.cli.build_parser`)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pgqueue import cli
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.worker_logging import configure_worker_logging


class Command(BaseCommand):
    help = "Run pgqueue workers and inspect jobs (the pgqueue CLI, on this project's database)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        cli.build_parser(parser, with_connection_flags=False)

    def handle(self, *args: Any, **options: Any) -> None:
        configure_worker_logging(options["log_level"])
        namespace = argparse.Namespace(**options)
        try:
            code = cli.run_command(namespace, app, out=self.stdout.write)
        except cli.CommandError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        if code != cli.EXIT_OK:
            raise CommandError(f"exit status {code}", returncode=code)
