"""Ratios, targets and the Markdown table from a results dict; the chart via the plot venv."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from benchmarks import envs

PEERS = ("procrastinate", "django-tasks-db", "background-tasks", "celery")
ORDER = ("pgqueue", "pgqueue-def", "pgqueue-prefetch", "raw", *PEERS)


def _get(results: dict[str, Any], *path: str) -> float | None:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int | float) and not isinstance(node, bool) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The headline ratios (same run) and the issue's targets, met or not."""
    tp = lambda name, c: _get(results, "throughput", name, c, "per_s")  # noqa: E731
    peer_c10 = {p: tp(p, "10") for p in PEERS if tp(p, "10")}
    best_peer = max(peer_c10, key=lambda p: peer_c10[p]) if peer_c10 else None
    ratios = {
        "throughput_c10_vs_procrastinate": _ratio(tp("pgqueue", "10"), tp("procrastinate", "10")),
        "throughput_c10_vs_best_peer": _ratio(tp("pgqueue", "10"),
                                              peer_c10.get(best_peer) if best_peer else None),
        "best_peer_c10": best_peer,
        "throughput_c10_vs_raw_b100": _ratio(tp("pgqueue", "10"), tp("raw", "100")),
        "throughput_c10_vs_raw_b10": _ratio(tp("pgqueue", "10"), tp("raw", "10")),
        "throughput_c1_vs_raw_b1": _ratio(tp("pgqueue", "1"), tp("raw", "1")),
        "throughput_c100_vs_raw_b100": _ratio(tp("pgqueue", "100"), tp("raw", "100")),
        "single_enqueue_vs_raw_insert": _ratio(_get(results, "enqueue", "pgqueue", "single_per_s"),
                                               _get(results, "enqueue", "raw", "single_per_s")),
        "bulk_enqueue_vs_raw_copy": _ratio(_get(results, "enqueue", "pgqueue", "bulk_per_s"),
                                           _get(results, "enqueue", "raw", "bulk_per_s")),
    }
    for c in ("1", "10", "100"):
        ratios[f"throughput_c{c}_def_vs_procrastinate"] = _ratio(tp("pgqueue-def", c),
                                                                 tp("procrastinate", c))
        ratios[f"throughput_c{c}_async_vs_procrastinate"] = _ratio(tp("pgqueue", c),
                                                                   tp("procrastinate", c))
        ratios[f"throughput_c{c}_def_vs_async"] = _ratio(tp("pgqueue-def", c), tp("pgqueue", c))
    for key in ("p50", "p95", "p99"):
        ratios[f"wakeup_{key}_vs_procrastinate"] = _ratio(
            _get(results, "wakeup", "pgqueue", key), _get(results, "wakeup", "procrastinate", key))
    backlog = results.get("backlog", {}).get("pgqueue", {})
    sizes = sorted((int(k.split("_")[1]), k) for k in backlog if k.startswith("waiting_"))
    if sizes:
        smallest = _get(backlog, sizes[0][1], "per_s")
        ratios["backlog_largest_vs_smallest"] = _ratio(_get(backlog, sizes[-1][1], "per_s"),
                                                       smallest)
        finished = [k for k in backlog if k.startswith("finished_")]
        if finished:
            ratios["backlog_finished_vs_smallest"] = _ratio(_get(backlog, finished[0], "per_s"),
                                                            smallest)
    wake = results.get("wakeup", {}).get("pgqueue", {})
    targets = [
        ("throughput c=10 >= 10x procrastinate", ratios["throughput_c10_vs_procrastinate"], 10),
        ("throughput c=10 >= 40% of raw B=100", ratios["throughput_c10_vs_raw_b100"], 0.4),
        ("single enqueue >= 85% of raw INSERT", ratios["single_enqueue_vs_raw_insert"], 0.85),
        ("bulk enqueue >= 50% of raw COPY", ratios["bulk_enqueue_vs_raw_copy"], 0.5),
        ("backlog: largest waiting >= 80% of smallest",
         ratios.get("backlog_largest_vs_smallest"), 0.8),
    ]
    checks = [{"target": name, "value": value, "threshold": threshold,
               "met": None if value is None else value >= threshold}
              for name, value, threshold in targets]
    for name, key, limit in (("wake-up p50 <= 2 ms", "p50", 2.0),
                             ("wake-up p99 <= 10 ms", "p99", 10.0)):
        value = wake.get(key)
        checks.append({"target": name, "value": value, "threshold": limit,
                       "met": None if value is None else value <= limit})
    return {"ratios": ratios, "targets": checks}


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _cell(node: Any, key: str, digits: int = 0) -> str:
    if not isinstance(node, dict):
        return "-"
    if "error" in node:
        return "error"
    if "skipped" in node:
        return "n/a"
    return _n(node.get(key), digits)


def _measured(row: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` that was measured (a peer without concurrency has only c=1)."""
    for key in keys:
        node = row.get(key)
        if isinstance(node, dict) and "per_s" in node:
            return node
    return None


def markdown(results: dict[str, Any]) -> str:
    systems = [s for s in ORDER if s in results.get("systems", {})]
    label = {s: results["systems"][s]["label"] for s in systems}
    lines = [f"# Benchmark results: {results['date']} ({results['mode']})", ""]
    pgs = results.get("postgres", {})
    lines.append(f"PostgreSQL {pgs.get('server_version', '?')} (fsync={pgs.get('fsync')}, "
                 f"synchronous_commit={pgs.get('synchronous_commit')}), "
                 f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}; "
                 f"run took {results.get('duration_s', 0) / 60:.1f} min. "
                 "Medians of the repetitions; ratios are within this run.")
    load = results.get("load_average", {})
    if load:
        lines.append("")
        lines.append("Load average (1/5/15 min) at the start: "
                     + " / ".join(f"{x:.2f}" for x in load.get("start", ()))
                     + "; at the end: " + " / ".join(f"{x:.2f}" for x in load.get("end", ()))
                     + f" ({results['machine']['cpus']} cores, shared with other users).")
    if results.get("statistics"):
        lines.append("")
        lines.append(f"Table statistics: {results['statistics']}.")
    engine = results.get("engine", {})
    if engine:
        lines.append("")
        lines.append(f"pgqueue measured: commit `{engine['commit'][:12]}` ({engine['ref']}), "
                     "a frozen copy." if engine.get("pinned") else
                     f"pgqueue measured: the working tree at `{engine.get('working_tree')}`.")
    lines.append("")
    summary = results.get("summary", {})
    lines += ["## Targets (pgqueue, same run)", "", "| target | measured | met |", "|---|---|---|"]
    for check in summary.get("targets", []):
        lines.append(f"| {check['target']} | {_n(check['value'], 2)} | {_n(check['met'])} |")
    lines.append("")
    tp = results.get("throughput", {})
    if tp:
        cs = sorted({c for s in tp.values() for c in s}, key=int)
        lines += ["## Processing throughput (jobs/s, one worker process)", "",
                  "| system | " + " | ".join(f"c={c}" for c in cs)
                  + " | worker peak RSS, c=10 (MiB) |",
                  "|---" * (len(cs) + 2) + "|"]
        for s in systems:
            row = tp.get(s, {})
            lines.append(f"| {label[s]} | " + " | ".join(_cell(row.get(c), "per_s") for c in cs)
                         + f" | {_cell(_measured(row, '10', '1'), 'peak_rss_mib')} |")
        lines += ["", "raw psycopg: c=N means claim batch B=N in one loop. django-tasks-db's "
                  "`db_worker` runs one task at a time (its RSS is at c=1). Each run: worker "
                  "spawn to the last job's recorded start, so start-up is included.", ""]
    enq = results.get("enqueue", {})
    if enq:
        lines += ["## Enqueue (jobs/s)", "", "| system | single (loop) | bulk |", "|---|---|---|"]
        for s in systems:
            lines.append(f"| {label[s]} | {_cell(enq.get(s), 'single_per_s')} | "
                         f"{_cell(enq.get(s), 'bulk_per_s')} |")
        lines.append("")
    wake = results.get("wakeup", {})
    if wake:
        lines += ["## Wake-up latency (ms, commit → task's first line, idle worker)", "",
                  "| system | p50 | p95 | p99 | max | what wakes the worker |",
                  "|---|---|---|---|---|---|"]
        for s in systems:
            if s in wake:
                woken = results["systems"][s].get("woken_by") or "-"
                lines.append(f"| {label[s]} | " + " | ".join(
                    _cell(wake[s], k, 1) for k in ("p50", "p95", "p99", "max"))
                    + f" | {woken} |")
        lines.append("")
    idle = results.get("idle", {})
    if idle:
        lines += ["## Idle worker cost (empty queue, c=10, default poll settings)", "",
                  "| system | transactions/s | CPU % of a core (worker process) |",
                  "|---|---|---|"]
        for s in systems:
            node = idle.get(s)
            if not isinstance(node, dict):
                continue
            tps = _cell(node, "transactions_per_s", 1)
            if node.get("transactions_per_s") is None and node.get("redis_commands_per_s"):
                tps = f"0 (Redis: {node['redis_commands_per_s']:,.1f} commands/s)"
            lines.append(f"| {label[s]} | {tps} | {_cell(node, 'cpu_percent', 1)} |")
        lines += ["", "Transactions: `xact_commit + xact_rollback` of the system's database "
                  "(pg_stat_database) over the window; CPU: utime + stime of the worker's "
                  "process tree (/proc), Postgres backends not included.", ""]
    steady = results.get("steady", {})
    if steady:
        lines += ["## Steady load (c=10; latency ms)", "",
                  "| system | rate/s | offered/s | p50 | p95 | p99 | max | keeps up |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in systems:
            for rate, node in steady.get(s, {}).items():
                lines.append(f"| {label[s]} | {rate} | {_cell(node, 'offered_per_s')} | "
                             + " | ".join(_cell(node, k, 1) for k in ("p50", "p95", "p99", "max"))
                             + f" | {_cell(node, 'keeps_up')} |")
        lines.append("")
    backlog = results.get("backlog", {})
    if backlog:
        keys = sorted({k for s in backlog.values() if isinstance(s, dict) for k in s
                       if k != "error"}, key=lambda k: (k.startswith("finished"),
                                                        int(k.split("_")[1])))
        lines += ["## Backlog scaling (jobs/s at c=10)", "",
                  "| system | " + " | ".join(k.replace("_", " ") for k in keys)
                  + " | largest/smallest waiting |", "|---" * (len(keys) + 2) + "|"]
        for s in systems:
            node = backlog.get(s, {})
            waiting = [k for k in keys if k.startswith("waiting") and
                       isinstance(node.get(k), dict) and "per_s" in node[k]]
            ratio = (_ratio(node[waiting[-1]]["per_s"], node[waiting[0]]["per_s"])
                     if len(waiting) > 1 else None)
            lines.append(f"| {label[s]} | " + " | ".join(_cell(node.get(k), "per_s")
                                                       for k in keys) + f" | {_n(ratio, 2)} |")
        lines.append("")
    procs = results.get("processes", {})
    if procs:
        ks = sorted({k for s in procs.values() for k in s}, key=int)
        lines += ["## Multi-process scaling (jobs/s, c=10 per process)", "",
                  "| system | " + " | ".join(f"{k} proc" for k in ks) + " |",
                  "|---" * (len(ks) + 1) + "|"]
        for s in systems:
            lines.append(f"| {label[s]} | " + " | ".join(
                _cell(procs.get(s, {}).get(k), "per_s") for k in ks) + " |")
        lines.append("")
    lines += ["## Configuration", ""]
    for s in systems:
        version = results.get("versions", {}).get(s, {})
        pinned = ", ".join(f"{k} {v}" for k, v in version.items()
                           if k in ("procrastinate", "django-tasks", "django-tasks-db",
                                    "django-background-tasks", "celery", "django", "redis"))
        lines.append(f"- **{label[s]}**{f' ({pinned})' if pinned else ''}: "
                     f"{results['systems'][s]['config']}")
    lines.append("")
    return "\n".join(lines)


def chart(json_path: Path, png_path: Path) -> None:
    python = envs.python_for("plot")
    script = Path(__file__).resolve().parent / "plot.py"
    subprocess.run([str(python), str(script), str(json_path), str(png_path)], check=True,
                   capture_output=True, text=True)
