"""Run a module against a frozen copy of the pgqueue engine (`run --engine REF`).

Other engineers edit `pgqueue/` while a 30-minute run goes on; a run must measure one engine.
`engine_snapshot(ref)` extracts `pgqueue/` and `migrations_sql/` of a git commit into
`benchmarks/.cache/engine-<sha>/`, and `python -m benchmarks.pin MODULE ARGS...` runs MODULE
(e.g. `pgqueue`, the CLI) with that copy imported instead of the editable install of the
working tree (BENCH_ENGINE_DIR names the copy; without it this is plain `python -m`).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

from benchmarks.envs import CACHE
from benchmarks.procs import ROOT


def engine_snapshot(ref: str) -> tuple[Path, str]:
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    target = CACHE / f"engine-{sha[:12]}"
    if not (target / "pgqueue" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "pgqueue", "migrations_sql"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha


def _use_snapshot(directory: str) -> None:
    # The editable install maps `pgqueue` to the working tree with a meta-path finder that
    # wins over sys.path: drop it, then put the snapshot first.
    sys.meta_path[:] = [f for f in sys.meta_path
                        if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, directory)


if __name__ == "__main__":
    engine = os.environ.get("BENCH_ENGINE_DIR")
    if engine:
        _use_snapshot(engine)
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
