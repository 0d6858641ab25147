"""The built wheel carries the SQL: installed in a fresh venv outside the repository,
`pgqueue migrate` still works."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_wheel_installed_outside_the_repo_can_migrate(tmp_path: Path, empty_dsn: str) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                    str(REPO_ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("pgqueue_tasks-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    result = subprocess.run([str(env_dir / "bin" / "pgqueue"), "--dsn", empty_dsn, "migrate"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied: 0001_initial")
    location = subprocess.run([str(python), "-c", "import pgqueue; print(pgqueue.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=True)
    assert str(env_dir) in location.stdout  # really the installed copy, not the checkout
