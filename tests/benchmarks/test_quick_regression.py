"""The benchmark regression gate as a test: `python -m benchmarks check --quick` must pass.

It compares pgqueue with the raw-psycopg loop measured in the same run (never an absolute
number) against benchmarks/baseline.json, and fails on a 2x slowdown. About a minute; marked
slow so the lead decides whether CI runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_pgqueue_keeps_its_speed_relative_to_raw_psycopg() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "check", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=230)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
