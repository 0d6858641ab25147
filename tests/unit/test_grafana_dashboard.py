"""docs/grafana-dashboard.json queries only metrics a worker exports, with their real labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from pgqueue.observe.metrics import LIVE_METRICS, WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _exported() -> set[str]:
    text = generate_latest(WorkerMetrics().registry).decode()
    names = set(re.findall(r"^(?:# TYPE )?(\w+)[{ ]", text, re.MULTILINE)) | set(LIVE_METRICS)
    return names | {f"{name}{suffix}" for name in names for suffix in SUFFIXES}


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel["targets"]]
    assert len(expressions) >= 12
    for expression in expressions:
        used = set(re.findall(r"\b((?:pgqueue|process|python)_\w+)", expression))
        assert used and used <= exported, (expression, used - exported)
    assert "pgqueue_notification_queue_usage_ratio" in " ".join(expressions)
