"""Helpers shared by the Django tests (importable: this folder is on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import wait_until

__all__ = ["HERE", "DjangoDatabase", "manage", "spawn_manage", "wait_until"]

HERE = Path(__file__).resolve().parent
ENV_VAR = "PGQUEUE_TEST_DJANGO_DATABASE"


@dataclass(frozen=True)
class DjangoDatabase:
    name: str
    settings: dict[str, Any]
    dsn: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess of the test project on this database."""
        return {**os.environ, ENV_VAR: json.dumps(self.settings), **extra}


def manage(database: DjangoDatabase, *args: str, timeout: float = 60,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the test project's manage.py in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, str(HERE / "manage.py"), *args], capture_output=True, text=True,
        timeout=timeout, env={**database.env(), **(env or {})}, cwd=HERE)


def spawn_manage(database: DjangoDatabase, *args: str, log: Path) -> subprocess.Popen[str]:
    """Start manage.py in the background, its output to `log` (a long-running worker)."""
    with log.open("w") as output:
        return subprocess.Popen([sys.executable, str(HERE / "manage.py"), *args], text=True,
                                stdout=output, stderr=subprocess.STDOUT, env=database.env(),
                                cwd=HERE)
