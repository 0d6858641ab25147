"""What the benchmark harness promises about its own set-up (docs/benchmarks.md), checked
without running a benchmark: latency is measured on LISTEN alone for the systems that have
it, seeded tables are not analyzed, and `def` tasks are measured beside `async def`."""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path

from benchmarks import metrics, systems
from benchmarks.peers import pgqueue_peer

LISTENING = ("pgqueue", "pgqueue-def", "pgqueue-prefetch", "procrastinate")


def _poll_seconds(flags: list[str]) -> float:
    for flag, value in itertools.pairwise(flags):
        if flag in ("--poll-interval", "--fetch-job-polling-interval"):
            return float(value)
    raise AssertionError(f"no poll interval in {flags}")


def test_latency_workers_can_only_be_woken_by_notify() -> None:
    by_name = {s.name: s for s in systems.all_systems()}
    longest_measurement_s = metrics.FULL.steady_s + 60
    for name in LISTENING:
        system = by_name[name]
        argv = system.worker_argv(Path("/venv/bin/python"), 10) + system.latency_flags
        assert _poll_seconds(argv) > 10 * longest_measurement_s, name
        assert "LISTEN" in system.woken_by, name
    assert all(s.woken_by for s in by_name.values())


def test_seeding_leaves_statistics_as_a_burst_does() -> None:
    assert systems.ANALYZE_AFTER_SEED is False
    for system in systems.all_systems():
        if system.clone is not None:
            statements = system.clone("1", 10, 0, False)
            assert not any("ANALYZE" in s.upper() for s in statements), system.name


def test_plain_def_tasks_are_measured_beside_async_ones() -> None:
    by_name = {s.name: s for s in systems.all_systems()}
    assert by_name["pgqueue-def"].extra_env == {"BENCH_TASK": "sync"}
    assert not inspect.iscoroutinefunction(pgqueue_peer.noop_sync.func)
    assert inspect.iscoroutinefunction(pgqueue_peer.noop.func)
