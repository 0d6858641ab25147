"""Structured log lines: `event key=value ...`, in one of three formats.

`log_event` puts the fields in the message (quoted as logfmt: double quotes, backslash
escapes) and, unchanged, in the record (`record.fields`, and each as `record.<name>`), so any
handler can use them. A
`traceback` field is not put in the message: it rides as the record's exception text, which
every standard formatter prints after the line.

`configure_logging(level, format)` (CLI `--log-format`, env PGQUEUE_LOG_FORMAT):

- `text` (default): `2026-12-03 10:00:00,123 INFO pgqueue.worker job.succeeded job_id=1 …`,
  a traceback on the lines after;
- `logfmt`: `ts=… level=info logger=… event=… job_id=1 …`, a traceback as one quoted value;
- `json`: one object per line with the stable keys `ts` (ISO 8601, UTC), `level`, `logger`,
  `event` (null for a plain log line), `message`, then the event's fields, and `traceback`
  when there is one. A field never overwrites those keys.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from datetime import UTC, datetime
from typing import Any

from pgqueue.errors import ConfigurationError

LOG_FORMATS = ("text", "logfmt", "json")
RESERVED_KEYS = ("ts", "level", "logger", "event", "message", "traceback")
_TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
"""Fields are also record attributes (`record.job_id`), but for these names a record has."""


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    traceback = fields.pop("traceback", None)
    text = " ".join(f"{key}={format_value(value)}" for key, value in fields.items())
    record = logger.makeRecord(logger.name, level, "(pgqueue)", 0, "%s %s", (event, text),
                               None, extra={"event": event, "fields": fields, **{
                                   k: v for k, v in fields.items()
                                   if k not in _RECORD_ATTRIBUTES}})
    record.exc_text = traceback.rstrip("\n") if traceback else None
    logger.handle(record)


def format_value(value: Any) -> str:
    """A value as logfmt writes it: bare when it can be, else in double quotes."""
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped) + '"'


def _float(value: float) -> str:
    """Three significant digits, never an exponent: 0.0123, 1.23, 12.3, 1234."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _parts(record: logging.LogRecord) -> dict[str, Any]:
    """The stable keys, then the fields (which never overwrite them)."""
    event = getattr(record, "event", None)
    parts: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": record.levelname.lower(), "logger": record.name, "event": event,
        "message": record.getMessage(),
    }
    for key, value in (getattr(record, "fields", None) or {}).items():
        parts.setdefault(key, value)
    traceback = record.exc_text or (
        logging.Formatter().formatException(record.exc_info) if record.exc_info else None)
    if traceback:
        parts["traceback"] = traceback
    return parts


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = _parts(record)
        if parts["event"] is not None:
            del parts["message"]  # the fields carry it
        else:
            del parts["event"]
        return " ".join(f"{key}={format_value(value)}" for key, value in parts.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_parts(record), default=str, ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "logfmt":
        return LogfmtFormatter()
    if log_format == "text":
        return logging.Formatter(_TEXT_LAYOUT)
    raise ConfigurationError(
        f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")


class _PgQueueHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (and replaces when called again)."""


def configure_logging(level: str = "INFO", log_format: str | None = None) -> None:
    """Log to stderr at `level` in `log_format` (else PGQUEUE_LOG_FORMAT, else text), unless
    the program has configured logging itself (the root logger has handlers of its own)."""
    formatter = formatter_for(log_format or os.environ.get("PGQUEUE_LOG_FORMAT") or "text")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _PgQueueHandler)]
    if root.handlers and not ours:
        return
    handler = _PgQueueHandler(sys.stderr)
    handler.setFormatter(formatter)
    for replaced in ours:  # called again (a command's --log-format): keep what was added to it
        root.removeHandler(replaced)
        for kept in replaced.filters:
            handler.addFilter(kept)
    root.addHandler(handler)
    root.setLevel(level.upper())
