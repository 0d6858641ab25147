"""`python -m benchmarks check --quick`: the CI regression gate (well under 2 minutes).

It runs pgqueue and the raw-psycopg reference alternately on the same server, five times, and
compares pgqueue's speed *relative to raw* with the committed baseline ratios
(`benchmarks/baseline.json`). A ratio below half its baseline (a 2x slowdown of pgqueue that
the raw loop did not share) fails. Absolute numbers are never compared, so a slower or busier
machine does not fail it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import metrics, pg, progress, stats
from benchmarks.systems import all_systems

BASELINE = Path(__file__).resolve().parent / "baseline.json"
REPS = 5
JOBS = 4000
SINGLE = 600
CONCURRENCY = 10
RAW_BATCH = 100
FAIL_BELOW = 0.5


def measure() -> dict[str, Any]:
    systems = {s.name: s for s in all_systems() if s.name in ("pgqueue", "raw")}
    samples: dict[str, list[float]] = {"throughput": [], "single_enqueue": []}
    started = time.monotonic()
    with pg.server() as admin_dsn:
        for system in systems.values():
            system.prepare(admin_dsn)
        try:
            for rep in range(REPS):
                ours, raw = systems["pgqueue"], systems["raw"]
                rates = {}
                for system, c in ((ours, CONCURRENCY), (raw, RAW_BATCH)):
                    system.reset()
                    system.seed(JOBS)
                    # First to last job: start-up (imports) would dilute a hot-path slowdown.
                    rates[system.name] = metrics.process(system, JOBS, c, 30)["drain_per_s"]
                samples["throughput"].append(rates["pgqueue"] / rates["raw"])
                singles = {}
                for system in (ours, raw):
                    system.reset()
                    done = system.produce("single", SINGLE, 0)
                    singles[system.name] = done["jobs"] / done["seconds"]
                samples["single_enqueue"].append(singles["pgqueue"] / singles["raw"])
                progress.say(f"check rep {rep + 1}: throughput c={CONCURRENCY} "
                             f"{rates['pgqueue']:.0f} vs raw B={RAW_BATCH} {rates['raw']:.0f} "
                             f"jobs/s; single enqueue {singles['pgqueue']:.0f} vs raw "
                             f"{singles['raw']:.0f}/s")
        finally:
            for system in systems.values():
                pg.drop_database(admin_dsn, system.database)
    return {"ratios": {k: stats.median(v) for k, v in samples.items()}, "samples": samples,
            "seconds": time.monotonic() - started}


def check(update_baseline: bool = False) -> int:
    measured = measure()
    ratios = measured["ratios"]
    if update_baseline:
        BASELINE.write_text(json.dumps({"ratios": ratios, "note": (
            "pgqueue / raw psycopg, same run (benchmarks/check.py). `python -m benchmarks "
            "check --quick` fails when a ratio drops below half of these.")}, indent=1) + "\n")
        progress.say(f"baseline written: {ratios}")
        return 0
    baseline = json.loads(BASELINE.read_text())["ratios"]
    failed = False
    for key, value in ratios.items():
        floor = baseline[key] * FAIL_BELOW
        verdict = "ok" if value >= floor else "REGRESSION"
        failed |= value < floor
        print(f"{key}: pgqueue/raw = {value:.3f} (baseline {baseline[key]:.3f}, fails below "
              f"{floor:.3f}): {verdict}")
    print(f"check took {measured['seconds']:.0f} s")
    return 1 if failed else 0


