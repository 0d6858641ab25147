"""Helpers shared by the Django tests (importable: this folder is on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0,
               interval: float = 0.05, message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
