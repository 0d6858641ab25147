"""The built wheel carries the SQL: installed in a fresh venv outside the repository,
`pgqueue migrate` still works."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_wheel_installed_outside_the_repo_can_migrate(tmp_path: Path, empty_dsn: str) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                    str(REPO_ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("pgqueue_tasks-*.whl"))
    _assert_metadata_fits_a_package_index(wheel)
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


def _assert_metadata_fits_a_package_index(wheel: Path) -> None:
    """Small to install, licensed, linked: what a package index page shows."""
    import pgqueue

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    text = metadata.decode()
    assert f"Version: {pgqueue.__version__}" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    base = [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(re.split(r"[\[>=<;]", dep)[0] for dep in base) == [
        "croniter", "psycopg", "psycopg-pool"]  # rich and prometheus_client are extras
    assert 'Requires-Dist: rich>=13; extra == "top"' in text
    assert 'Requires-Dist: prometheus_client>=0.17; extra == "metrics"' in text
    assert "Project-URL: Repository, https://" in text
    description = text.split("\n\n", 1)[1]
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and all(link.startswith(("https://", "#")) for link in links), [
        link for link in links if not link.startswith(("https://", "#"))]
