"""Draw the results chart (run by the harness with the plot venv's python, which has matplotlib).

    python plot.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ORDER = ("pgqueue", "pgqueue-def", "pgqueue-prefetch", "raw", "procrastinate",
         "django-tasks-db", "background-tasks", "celery")
COLORS = {"pgqueue": "#2b6cb0", "pgqueue-def": "#2c5282", "pgqueue-prefetch": "#63b3ed",
          "raw": "#a0aec0",
          "procrastinate": "#dd6b20", "django-tasks-db": "#38a169",
          "background-tasks": "#805ad5", "celery": "#c53030"}


def value(node, *path):
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return 0.0
        node = node[key]
    return node if isinstance(node, int | float) else 0.0


def bars(ax, results, names, getter, title, unit, log=False):
    values = [getter(results, n) for n in names]
    ax.bar(range(len(names)), values, color=[COLORS[n] for n in names])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([results["systems"][n]["label"] for n in names], rotation=30,
                       ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    if log:
        ax.set_yscale("log")
    for i, v in enumerate(values):
        if v:
            ax.text(i, v, f"{v:,.0f}" if v >= 10 else f"{v:.1f}", ha="center", va="bottom",
                    fontsize=7)


def main(source: str, target: str) -> None:
    with open(source) as handle:
        results = json.load(handle)
    names = [n for n in ORDER if n in results["systems"]]
    queues = [n for n in names if n != "raw"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    bars(axes[0][0], results, names, lambda r, n: value(r, "throughput", n, "10", "per_s")
         or (value(r, "throughput", n, "1", "per_s") if n == "django-tasks-db" else 0),
         "Throughput, 1 worker, c=10 (raw: B=10)", "jobs/s (log)", log=True)
    bars(axes[0][1], results, names, lambda r, n: value(r, "throughput", n, "100", "per_s"),
         "Throughput, 1 worker, c=100 (raw: B=100)", "jobs/s (log)", log=True)
    bars(axes[0][2], results, queues, lambda r, n: value(r, "wakeup", n, "p50"),
         "Wake-up latency p50 (idle worker)", "ms (log)", log=True)
    bars(axes[1][0], results, names, lambda r, n: value(r, "enqueue", n, "single_per_s"),
         "Single enqueue in a loop", "jobs/s")
    bars(axes[1][1], results, names, lambda r, n: value(r, "enqueue", n, "bulk_per_s"),
         "Bulk enqueue", "jobs/s (log)", log=True)
    ax = axes[1][2]
    for n in names:
        node = results.get("backlog", {}).get(n, {})
        points = sorted((int(k.split("_")[1]), v["per_s"]) for k, v in node.items()
                        if k.startswith("waiting_") and isinstance(v, dict) and "per_s" in v)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    color=COLORS[n], label=results["systems"][n]["label"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("Throughput vs jobs waiting (c=10)", fontsize=10)
    ax.set_xlabel("jobs waiting", fontsize=8)
    ax.set_ylabel("jobs/s (log)", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle(f"pgqueue and its peers, {results['date'][:10]} ({results['mode']} run, "
                 "same machine and Postgres)", fontsize=12)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
