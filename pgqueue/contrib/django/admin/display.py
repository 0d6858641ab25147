"""How the admin pages show times, durations, states and tracebacks: to the second, in the
project's time zone, with the user's own frames of a traceback before pgqueue's."""

from __future__ import annotations

import re
import sysconfig
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

import pgqueue

_PGQUEUE_DIR = str(Path(pgqueue.__file__).resolve().parent)
_LIBRARY_DIRS = tuple(str(Path(sysconfig.get_paths()[key]).resolve())
                      for key in ("stdlib", "purelib", "platlib"))
NONE = "\u2013"
"""Shown for a missing value (an en dash)."""
_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line \d+, in ')


def when(value: datetime | None, *, short: bool = False) -> SafeString | str:
    """A time to the second in the current time zone (the full value on hover); `short`, for
    lists: the time alone today, the month and day before it otherwise."""
    if value is None:
        return NONE
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    shown = local.strftime("%Y-%m-%d %H:%M:%S")
    if short:
        today = local.date() == timezone.localtime().date()
        shown = local.strftime("%H:%M:%S" if today else "%b %d %H:%M:%S")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(),
                       local.isoformat(), shown)


def seconds(value: float | timedelta | None) -> str:
    """A duration as people read it: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if value is None:
        return NONE
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if total < 0:
        return NONE
    if total < 1:
        return f"{total * 1000:.0f} ms"
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def period(delta: timedelta) -> str:
    """An interval schedule's period in its largest whole unit: 1h, 15m, 90s, 2d."""
    total = delta.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if total >= size and total % size == 0:
            return f"{total / size:g}{unit}"
    return f"{total:g}s"


def badge(text: str, kind: str | None = None) -> SafeString:
    """A coloured label (the CSS classes are in admin/pgqueue/styles.html)."""
    return format_html('<span class="pgq-badge pgq-{}">{}</span>', kind or text, text)


@dataclass(frozen=True, slots=True)
class Traceback:
    """A stored traceback, split for reading: the frames of the user's code (most recent call
    last, as Python prints them) before the frames of pgqueue and of libraries."""

    user_frames: str
    other_frames: int
    full: str


def split_traceback(text: str) -> Traceback:
    lines = text.rstrip("\n").splitlines()
    user: list[str] = []
    other = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        frame = _FRAME.match(line)
        if frame is None:
            user.append(line)
            index += 1
            continue
        body = [line]
        index += 1
        while index < len(lines) and lines[index].startswith("    "):
            body.append(lines[index])
            index += 1
        if _is_users(frame.group("path")):
            user.extend(body)
        else:
            other += 1
    return Traceback("\n".join(user), other, text)


def _is_users(path: str) -> bool:
    try:
        resolved = str(Path(path).resolve())
    except (OSError, ValueError):
        return True
    if resolved.startswith(_PGQUEUE_DIR + "/"):
        return False
    return not any(resolved.startswith(directory + "/") for directory in _LIBRARY_DIRS)


__all__ = ["NONE", "Traceback", "badge", "period", "seconds", "split_traceback", "when"]
