"""The bench app with two proposed worker changes applied by monkeypatching (experiments only;
the engine itself is not changed here):

1. the task's `inspect.signature` computed once, not for every job (executor.execute);
2. a fast path for JSON results: an exact-type walk, then one `json.dumps`, instead of
   dumps + loads + a recursive comparison (`validation.to_json`).

`python -m benchmarks.experiments tuned` runs this worker against the stock one.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import types
from typing import Any

from benchmarks.peers.pgqueue_app import app, noop, noop_sync
from pgqueue import validation
from pgqueue.worker import executor

__all__ = ["app", "fast_to_json", "noop", "noop_sync"]


def _plain(value: Any) -> bool:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def fast_to_json(value: Any, what: str) -> str:
    """Same contract as validation.to_json (falls back to it to raise its exact errors)."""
    if value is None:
        return "null"
    if _plain(value):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if "\\u0000" not in text:
            return text
    return validation.to_json(value, what)


executor.inspect = types.SimpleNamespace(  # type: ignore[assignment]
    signature=functools.lru_cache(maxsize=None)(inspect.signature))
executor.to_json = fast_to_json
