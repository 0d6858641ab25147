"""`pgqueue top`: a live, refreshing terminal view of queues, rates, latency, workers, failing
tasks and stuck jobs, drawn with rich from the DBA views (docs/sql.md).

Each refresh reads the views once (queue_stats and health count the whole jobs table, so
keep the interval at a second or more on big tables). `q` or Ctrl-C quits; a lost database
connection is shown on screen and retried at the next refresh. When stdout is not a terminal,
or with `--once`, one frame is printed and the command exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import threading
import tty
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TextIO

from pgqueue.app import App
from pgqueue.errors import DatabaseUnavailable, MissingExtra
from pgqueue.observe.snapshot import Row, Snapshot, take_snapshot
from pgqueue.printable import printable

try:
    from rich import box
    from rich.console import Console, Group, RenderableType
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text
except ModuleNotFoundError as missing:
    raise MissingExtra("pgqueue top", "rich", "top") from missing

EXIT_OK = 0
PROGRESS_BAR = 10
"""Characters of the progress bar in the running jobs table."""
MAX_ROWS = {"queues": 15, "tasks": 12, "failing": 8, "workers": 10, "children": 12, "stuck": 8}
SLOW_WAIT_SECONDS = 60.0
"""An oldest waiting job older than this is highlighted."""
DASH = "\N{EN DASH}"
PIPED_WIDTH = 200


def run_top(app: App, *, interval: float = 2.0, once: bool = False,
            console: Console | None = None) -> int:
    """Draw until `q` or Ctrl-C (or once); database outages are shown, not fatal."""
    if console is None:
        # Piped to a script: lay the tables out whole rather than at the default 80 columns.
        piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        console = Console(width=PIPED_WIDTH if piped else None)
    if once or not console.is_terminal:
        console.print(render(take_snapshot(app), interval=None))
        return EXIT_OK
    snapshot: Snapshot | None = None
    with _keys(sys.stdin) as wait_for_key, Live(
        console=console, screen=True, auto_refresh=False, redirect_stdout=False,
        redirect_stderr=False,
    ) as live:
        try:
            while True:
                error = None
                try:
                    snapshot = take_snapshot(app)
                except DatabaseUnavailable as exc:
                    error = str(exc)
                live.update(render(snapshot or Snapshot(), interval=interval, error=error),
                            refresh=True)
                if wait_for_key(interval) in ("q", "Q"):
                    break
        except KeyboardInterrupt:
            pass
    return EXIT_OK


@contextlib.contextmanager
def _keys(stream: TextIO) -> Iterator[Any]:
    """Yields `wait(timeout) -> key or None`; a terminal is put in cbreak mode meanwhile (keys
    arrive unbuffered, Ctrl-C still interrupts) and restored on the way out."""
    try:
        fd = stream.fileno()
        is_tty = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        is_tty = False
    if not is_tty:
        never = threading.Event()

        def wait_without_keys(timeout: float) -> str | None:
            never.wait(timeout)
            return None

        yield wait_without_keys
        return
    saved = termios.tcgetattr(fd)

    def wait_for_key(timeout: float) -> str | None:
        readable, _, _ = select.select([fd], [], [], timeout)
        if not readable:
            return None
        data = os.read(fd, 32).decode(errors="replace")
        return data[:1] or None

    tty.setcbreak(fd)
    try:
        yield wait_for_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# -- drawing -----------------------------------------------------------------------------------


def render(snapshot: Snapshot, *, interval: float | None,
           error: str | None = None) -> RenderableType:
    """The whole screen for one snapshot (pure: no I/O, so it is unit-testable)."""
    parts: list[RenderableType] = [_header(snapshot, interval)]
    if error:
        parts.append(_text(f"database unavailable, retrying: {error}", style="bold red"))
    parts.append(_summary(snapshot))
    for section in (_queues_table(snapshot.queues), _tasks_table(snapshot.tasks),
                    _failing_table(snapshot.failing_tasks, snapshot.taken_at),
                    _workers_table(snapshot.workers),
                    _running_table(snapshot.running, sum(q["running"] for q in snapshot.queues)),
                    _children_table(snapshot.children),
                    _stuck_table(snapshot.stuck)):
        if section is not None:
            parts += [Text(""), section]
    return Group(*parts)


def _header(snapshot: Snapshot, interval: float | None) -> Text:
    header = Text("pgqueue top", style="bold")
    clock = datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S")
    details = [printable(snapshot.database) or DASH, clock,
               f"read in {_seconds(snapshot.read_seconds)}"]
    if interval is not None:
        details += [f"every {interval:g}s", "q quits"]
    header.append("  " + " · ".join(details), style="dim")
    return header


def _summary(snapshot: Snapshot) -> Text:
    queues, tasks, health = snapshot.queues, snapshot.tasks, snapshot.health or {}
    done_per_min = sum(t["succeeded_1m"] + t["failed_1m"] for t in tasks)
    failed_1h = sum(t["failed_1h"] for t in tasks)
    alive = sum(1 for w in snapshot.workers if w["alive"])
    text = Text()
    text.append("jobs ", style="bold")
    text.append(f"due {sum(q['due'] for q in queues)} · scheduled "
                f"{sum(q['scheduled'] for q in queues)} · running "
                f"{sum(q['running'] for q in queues)} · done/min {done_per_min} · ")
    text.append(f"failed 1h {failed_1h}", style="red" if failed_1h else "")
    text.append(" · ")
    text.append(f"stuck {len(snapshot.stuck)}", style="bold red" if snapshot.stuck else "")
    unserved = (health or {}).get("unserved_jobs") or 0
    if unserved:  # due jobs whose task no live worker has (pgqueue.unserved_jobs)
        text.append(" · ")
        text.append(f"no worker has their task {unserved}", style="bold yellow")
    text.append("\nworkers ", style="bold")
    text.append(f"{alive} alive / {len(snapshot.workers)}",
                style="" if alive or not queues else "bold red")
    text.append(" · paused queues " + str(sum(1 for q in queues if q["paused"])))
    if snapshot.children:
        memory = sum(c["rss_bytes"] or 0 for c in snapshot.children)
        text.append(f" · child processes {len(snapshot.children)} ({_bytes(memory)})")
    if health:
        text.append("\ntable ", style="bold")
        text.append(f"{_bytes(health['jobs_total_bytes'])} · dead tuples "
                    f"{_percent(health['jobs_dead_ratio'])} · last autovacuum "
                    f"{_ago(health['jobs_last_autovacuum'], snapshot.taken_at)} · NOTIFY queue "
                    f"{_percent(health['notification_queue_usage'])} · oldest transaction "
                    f"{_seconds(health['oldest_transaction_seconds'])}")
    return text


def _table(title: str, columns: Sequence[str], *, numeric_from: int = 1) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False, expand=False, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index >= numeric_from else "left",
                         no_wrap=True)
    return table


def _capped(table: Table, rows: Sequence[Row], key: str) -> Sequence[Row]:
    limit = MAX_ROWS[key]
    if len(rows) > limit:
        table.caption = f"+{len(rows) - limit} more"
        table.caption_justify = "left"
    return rows[:limit]


def _queues_table(queues: Sequence[Row]) -> Table:
    table = _table("Queues", ("queue", "state", "due", "sched", "running", "on lock",
                              "failed", "oldest wait", "wait p50", "wait p95", "started 5m"),
                   numeric_from=2)
    for q in _capped(table, queues, "queues"):
        oldest = q["oldest_waiting_seconds"]
        table.add_row(
            _text(q["queue"]), _queue_state(q), str(q["due"]), str(q["scheduled"]),
            _running_against_limit(q), str(q["waiting_on_lock"]),
            Text(str(q["failed"]), style="red" if q["failed"] else ""),
            Text(_seconds(oldest),
                 style="yellow" if oldest is not None and oldest > SLOW_WAIT_SECONDS else ""),
            _seconds(q["wait_p50_seconds"]), _seconds(q["wait_p95_seconds"]),
            str(q["started_5m"]))
    if not queues:
        table.add_row("(no jobs yet)", *[""] * 10)
    return table


def _queue_state(queue: Row) -> Text:
    """active, or what holds its due jobs back (paused, a limit reached)."""
    held_back_by = queue["held_back_by"] or ("paused" if queue["paused"] else None)
    if held_back_by is None:
        return Text("active")
    return Text(held_back_by, style="bold yellow")


def _running_against_limit(queue: Row) -> str:
    """`3/5` under a concurrency limit, `3` without one."""
    limit = queue["concurrency"]
    return str(queue["running"]) if limit is None else f"{queue['running']}/{limit}"


def _tasks_table(tasks: Sequence[Row]) -> Table:
    table = _table("Tasks: rates and latency (last hour)",
                   ("task", "queued", "running", "retrying", "done/min 1m", "per min 5m",
                    "errors 5m", "errors 1h", "run p50", "run p95"))
    for t in _capped(table, tasks, "tasks"):
        table.add_row(
            _text(t["task_name"]), str(t["queued"]), str(t["running"]), str(t["retrying"]),
            str(t["succeeded_1m"] + t["failed_1m"]), f"{t['per_minute_5m']:g}",
            _error_rate(t["error_rate_5m"]), _error_rate(t["error_rate_1h"]),
            _seconds(t["duration_p50_seconds"]), _seconds(t["duration_p95_seconds"]))
    return table


def _failing_table(failing: Sequence[Row], now: float) -> RenderableType:
    if not failing:
        return Text("Failing tasks: none in the last hour", style="green")
    table = _table("Failing tasks", ("task", "failed 1h", "errors 1h", "retrying",
                                     "last failure", "last error"))
    table.columns[-1].justify = "left"
    table.columns[-1].overflow = "ellipsis"
    table.columns[-1].max_width = 70
    for t in _capped(table, failing, "failing"):
        table.add_row(_text(t["task_name"], style="red"), str(t["failed_1h"]),
                      _error_rate(t["error_rate_1h"]), str(t["retrying"]),
                      _ago(t["last_failed_at"], now), _text(t["last_error"] or DASH))
    return table


def _workers_table(workers: Sequence[Row]) -> RenderableType:
    if not workers:
        return Text("Workers: none registered", style="bold yellow")
    table = _table("Workers", ("worker", "host:pid", "queues", "busy", "heartbeat", "up",
                               "running"), numeric_from=3)
    table.columns[-1].justify = "left"
    table.columns[-1].overflow = "ellipsis"
    table.columns[-1].max_width = 50
    for w in _capped(table, workers, "workers"):
        heartbeat = _seconds(w["heartbeat_age_seconds"]) + ("" if w["alive"] else " DEAD")
        table.add_row(
            _text(w["name"], style="" if w["alive"] else "red"),
            _text(f"{w['hostname']}:{w['pid']}"), _text(",".join(w["queues"] or ["*"])),
            f"{w['running_jobs']}/{w['concurrency']}",
            Text(heartbeat, style="" if w["alive"] else "bold red"),
            _seconds(w["uptime_seconds"]), _text(", ".join(sorted(w["running_tasks"] or []))))
    return table


def _running_table(running: Sequence[Row], total: int) -> RenderableType | None:
    """The oldest running jobs and how far they are (context.set_progress): hidden when none
    runs."""
    if not running:
        return None
    table = _table("Running jobs (oldest first)", ("job", "task", "worker", "running",
                                                   "progress", "message"), numeric_from=3)
    table.columns[0].justify = "right"
    table.columns[-1].justify = "left"
    table.columns[-1].overflow = "ellipsis"
    table.columns[-1].max_width = 50
    for r in running:
        table.add_row(str(r["id"]), _text(r["task_name"]),
                      _text(r["worker_name"] or (f"#{r['worker_id']}" if r["worker_id"]
                                                 else DASH)),
                      _seconds(r["running_seconds"]), _progress(r["progress"]),
                      _text(r["progress_message"] or ""))
    if total > len(running):
        table.caption = f"+{total - len(running)} more"
        table.caption_justify = "left"
    return table


def _children_table(children: Sequence[Row]) -> RenderableType | None:
    """Process-pool workers' children (`--pool process`): hidden when there are none."""
    if not children:
        return None
    table = _table("Child processes", ("worker", "pid", "job", "task", "running", "memory",
                                       "jobs run", "up"), numeric_from=4)
    table.columns[1].justify = table.columns[2].justify = "right"
    for c in _capped(table, children, "children"):
        table.add_row(_text(c["worker_name"], style="" if c["alive"] else "red"),
                      str(c["pid"]), str(c["job_id"]) if c["job_id"] else "idle",
                      _text(c["task_name"] or DASH), _seconds(c["job_running_seconds"]),
                      _bytes(c["rss_bytes"]), str(c["jobs_run"]), _seconds(c["uptime_seconds"]))
    return table


def _stuck_table(stuck: Sequence[Row]) -> RenderableType:
    if not stuck:
        return Text("Stuck jobs: none", style="green")
    table = _table("Stuck jobs", ("job", "task", "queue", "reason", "running", "limit",
                                  "worker"))
    table.title_style = "bold red"
    for s in _capped(table, stuck, "stuck"):
        table.add_row(str(s["id"]), _text(s["task_name"]), _text(s["queue"]),
                      Text(s["reason"], style="red"),
                      _seconds(s["running_seconds"]), _seconds(s["limit_seconds"]),
                      _text(s["worker_name"] or (f"#{s['worker_id']}" if s["worker_id"]
                                                 else DASH)))
    return table


# -- formatting --------------------------------------------------------------------------------


def _text(value: object, style: str = "") -> Text:
    """A value someone else wrote (a name, an error): escaped, and a Text, so rich reads it
    neither as control sequences nor as markup (a queue named "[/]" made rich raise MarkupError)."""
    return Text(printable(value), style=style)


def _seconds(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _ago(moment: datetime | None, now: float) -> str:
    return DASH if moment is None else f"{_seconds(max(0.0, now - moment.timestamp()))} ago"


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _progress(value: float | None) -> str:
    """`████░░░░░░  40%`; a dash for a task that reports none."""
    if value is None:
        return DASH
    filled = round(value * PROGRESS_BAR)
    return f"{'█' * filled}{'░' * (PROGRESS_BAR - filled)} {value * 100:3.0f}%"


def _error_rate(value: float | None) -> Text:
    return Text(_percent(value), style="red" if value else "")


def _bytes(value: int | None) -> str:
    if value is None:
        return DASH
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
