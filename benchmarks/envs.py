"""One virtualenv per peer under `benchmarks/.cache/venvs/`, created on first use and reused.

Each venv is keyed by its requirement list: changing a pin rebuilds it. Peers never share a venv
with each other or with pgqueue, so their dependency pins cannot interfere.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import venv
from pathlib import Path

from benchmarks import progress

CACHE = Path(__file__).resolve().parent / ".cache"
VENVS = CACHE / "venvs"

# Pinned so a rerun measures the same code; each is the newest release at the time of writing.
REQUIREMENTS: dict[str, list[str]] = {
    "procrastinate": ["procrastinate==3.*", "psycopg[binary]>=3.2"],
    "django_tasks_db": ["django-tasks-db", "django-tasks", "Django>=5.2,<6",
                        "psycopg[binary]>=3.2"],
    "background_tasks": ["django-background-tasks", "Django>=4.2,<5.1", "psycopg[binary]>=3.2"],
    "celery": ["celery[redis]==5.*", "psycopg[binary]>=3.2"],
    "plot": ["matplotlib"],
    "profile": ["py-spy"],
}


def python_for(name: str) -> Path:
    """The interpreter of venv `name`, creating and filling the venv if needed."""
    requirements = REQUIREMENTS[name]
    root = VENVS / name
    python = root / "bin" / "python"
    stamp = root / "requirements.json"
    wanted = json.dumps(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    progress.say(f"installing {name} into {root} ({', '.join(requirements)})")
    venv.EnvBuilder(clear=True, with_pip=True, symlinks=True).create(root)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {root} failed:\n{done.stderr[-3000:]}")
    stamp.write_text(wanted)
    return python


def versions(name: str) -> dict[str, str]:
    """Installed distribution versions in venv `name` (recorded in the results file)."""
    out = subprocess.run(
        [str(python_for(name)), "-m", "pip", "list", "--format=json"],
        check=True, capture_output=True, text=True).stdout
    return {d["name"].lower(): d["version"] for d in json.loads(out)}


def digest() -> str:
    return hashlib.sha256(json.dumps(REQUIREMENTS, sort_keys=True).encode()).hexdigest()[:12]


if __name__ == "__main__":
    for venv_name in sys.argv[1:] or REQUIREMENTS:
        python_for(venv_name)
