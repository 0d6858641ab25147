"""Text that producers and tasks wrote (queue and task names, error messages, worker names),
made safe to show on a terminal: control and other non-printable characters are written as
Python escapes (`\\x1b`, `\\n`, `\\u202e`), so a name holding an escape sequence cannot clear
the screen, retitle the window or forge a line of output. `pgqueue stats`, `jobs`, `schedules`
and `top` print every such value through `printable`."""

from __future__ import annotations


def printable(value: object) -> str:
    """`str(value)` with each non-printable character escaped; backslashes are left as they
    are, so ordinary messages (Windows paths, regexes) read unchanged."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
