"""Command line: `python -m benchmarks run --quick|--full`, `check --quick`, `report FILE`,
`flow --before REF --after REF`,
`chord` (a 10,000-parent chord beside 10,000 plain jobs, pgqueue and Celery)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmarks import check, chord, flow, metrics, report, run
from benchmarks import systems as systems_module
from benchmarks.systems import all_systems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="every metric, pgqueue and every peer")
    size = run_cmd.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick")
    size.add_argument("--full", dest="mode", action="store_const", const="full")
    run_cmd.add_argument("--systems", default=None,
                         help="comma-separated subset of: "
                              + ",".join(s.name for s in all_systems()))
    run_cmd.add_argument("--metrics", default=None,
                         help="comma-separated subset of: " + ",".join(run.METRICS))
    run_cmd.add_argument("--out", type=Path, default=run.RESULTS)
    run_cmd.add_argument("--analyze-after-seed", action="store_true",
                         help="ANALYZE after seeding (fresh statistics; by default they are "
                              "left as a burst leaves them)")
    run_cmd.add_argument("--engine", default=None, metavar="GIT_REF",
                         help="measure this commit's pgqueue (a frozen copy), not the working "
                              "tree other people may be editing")
    check_cmd = commands.add_parser("check", help="CI gate: pgqueue/raw ratio vs baseline")
    check_cmd.add_argument("--quick", action="store_true", help="(the only mode; accepted)")
    check_cmd.add_argument("--update-baseline", action="store_true")
    flow_cmd = commands.add_parser(
        "flow", help="flow control's cost: an engine before it beside one after, limits, locks")
    flow_size = flow_cmd.add_mutually_exclusive_group()
    flow_size.add_argument("--quick", dest="mode", action="store_const", const="quick")
    flow_size.add_argument("--full", dest="mode", action="store_const", const="full")
    flow_cmd.add_argument("--before", default=flow.BEFORE, metavar="GIT_REF",
                          help="the engine before flow control (default 3dc12ce, the last "
                               "commit before unique keys, locks and limits)")
    flow_cmd.add_argument("--after", default="HEAD", metavar="GIT_REF")
    flow_cmd.add_argument("--rounds", type=int, default=None,
                          help="interleaved rounds (default: 7 full, 1 quick)")
    flow_cmd.add_argument("--cases", default=None,
                          help="comma-separated subset of: " + ",".join(
                              c.key for c in flow.cases(flow.FULL)))
    flow_cmd.add_argument("--jobs", type=int, default=None,
                          help="backlog of every run (default: 10,000 full, 2,000 quick); a "
                               "c=100 worker drains 10,000 in about a second, so its rates "
                               "steady with more")
    flow_cmd.add_argument("--out", type=Path, default=run.RESULTS)
    chord_cmd = commands.add_parser(
        "chord", help="a chord of N parents beside N plain jobs, pgqueue and Celery (4 workers)")
    chord_cmd.add_argument("--jobs", type=int, default=10_000)
    chord_cmd.add_argument("--concurrency", type=int, default=8, help="slots per worker")
    chord_cmd.add_argument("--rounds", type=int, default=3)
    chord_cmd.add_argument("--targets", default=",".join(chord.DEFAULT_TARGETS),
                           help="comma-separated subset of: " + ",".join(chord.TARGETS))
    chord_cmd.add_argument("--before", default=None, metavar="GIT_REF",
                           help="also pgqueue's plain jobs and chord on this commit's engine "
                                "(a frozen copy, its own database), interleaved")
    chord_cmd.add_argument("--out", type=Path, default=run.RESULTS)
    report_cmd = commands.add_parser("report", help="rewrite the .md and .png of a results file")
    report_cmd.add_argument("json_file", type=Path)
    args = parser.parse_args(argv)

    if args.command == "run":
        mode = args.mode or "quick"
        sizes = metrics.FULL if mode == "full" else metrics.QUICK
        systems = all_systems()
        if args.systems:
            wanted = args.systems.split(",")
            unknown = set(wanted) - {s.name for s in systems}
            if unknown:
                parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
            systems = [s for s in systems if s.name in wanted]
        chosen = args.metrics.split(",") if args.metrics else list(run.METRICS)
        systems_module.ANALYZE_AFTER_SEED = args.analyze_after_seed
        run.run(systems, sizes, mode, chosen, args.out, engine=args.engine)
        return 0
    if args.command == "flow":
        sizes = flow.QUICK if args.mode == "quick" else flow.FULL
        if args.rounds:
            sizes = dataclasses.replace(sizes, rounds=args.rounds)
        if args.jobs:
            sizes = dataclasses.replace(sizes, jobs=args.jobs)
        flow.run(args.before, args.after, sizes, args.mode or "full", args.out,
                 only=args.cases.split(",") if args.cases else None)
        return 0
    if args.command == "chord":
        chord.run(args.jobs, args.concurrency, args.rounds, args.targets.split(","), args.out,
                  before=args.before)
        return 0
    if args.command == "check":
        return check.check(update_baseline=args.update_baseline)
    results = json.loads(args.json_file.read_text())
    results["summary"] = report.summarize(results)
    args.json_file.with_suffix(".md").write_text(report.markdown(results))
    report.chart(args.json_file, args.json_file.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
