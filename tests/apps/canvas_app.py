"""Tasks for the workflow tests (tests/integration/test_canvas.py): each call is recorded in
`calls`, read by the test in-process (the workers run in threads of the test)."""

from __future__ import annotations

import threading
from typing import Any

import pgqueue

app = pgqueue.App()
calls: list[tuple[str, Any]] = []
_lock = threading.Lock()


def _record(name: str, value: Any) -> None:
    with _lock:
        calls.append((name, value))


@app.task
def add(x: int, y: int) -> int:
    _record("add", (x, y))
    return x + y


@app.task
def double(x: int) -> int:
    _record("double", x)
    return 2 * x


@app.task
def collect(results: list[Any], label: str = "") -> dict[str, Any]:
    """A chord callback: the list of its parents' results, then its own arguments."""
    _record("collect", (results, label))
    return {"label": label, "results": results}


@app.task(retry=False)
def explode(x: int) -> int:
    _record("explode", x)
    raise pgqueue.Fail(f"no {x}")
