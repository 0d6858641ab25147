"""``manage.py background_tasks``: list scheduled and running tasks with their state; cancel,
retry or delete them; delete completed ones.

    manage.py background_tasks                        # scheduled and running tasks
    manage.py background_tasks --completed [--failed] # finished tasks (only failed ones)
    manage.py background_tasks --cancel 12 --cancel 13
    manage.py background_tasks --retry 12             # a finished task, queued again now
    manage.py background_tasks --delete 12
    manage.py background_tasks --delete-completed [--older-than SECONDS]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background.models import CompletedTask, Task


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _pending_state(task: Task) -> str:
    if task.state == "running":
        return "running"
    if task.attempts and task.last_error:
        return "retrying"
    return "due" if task.run_at <= timezone.now() else "scheduled"


class Command(BaseCommand):
    help = "List scheduled and running background tasks; cancel, retry or delete them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queue", help="only tasks of this queue")
        parser.add_argument("--limit", type=int, default=100, help="rows to list (100)")
        parser.add_argument("--completed", action="store_true", help="list finished tasks")
        parser.add_argument("--failed", action="store_true",
                            help="with --completed: only failed (and cancelled) tasks")
        parser.add_argument("--cancel", type=int, action="append", default=[], metavar="ID",
                            help="cancel a scheduled task, or abort a running one")
        parser.add_argument("--retry", type=int, action="append", default=[], metavar="ID",
                            help="queue a completed task again now")
        parser.add_argument("--delete", type=int, action="append", default=[], metavar="ID",
                            help="delete a task (scheduled or completed)")
        parser.add_argument("--delete-completed", action="store_true",
                            help="delete completed tasks")
        parser.add_argument("--older-than", type=float, default=0, metavar="SECONDS",
                            help="with --delete-completed: only those finished this long ago")

    def handle(self, *args: Any, **options: Any) -> None:
        acted = False
        for task_id in options["cancel"]:
            acted = True
            state = app.cancel_job(task_id)
            if state is None:
                raise CommandError(f"task {task_id} is not scheduled or running")
            self.stdout.write(f"task {task_id} cancelled" if state == "cancelled"
                              else f"task {task_id} is running: abort requested")
        for task_id in options["retry"]:
            acted = True
            if not app.retry_job(task_id):
                raise CommandError(f"task {task_id} is not completed")
            self.stdout.write(f"task {task_id} queued again")
        for task_id in options["delete"]:
            acted = True
            deleted = (Task.objects.filter(pk=task_id).delete()[0]
                       + CompletedTask.objects.filter(pk=task_id).delete()[0])
            if not deleted:
                raise CommandError(f"no task {task_id}")
            self.stdout.write(f"task {task_id} deleted")
        if options["delete_completed"]:
            acted = True
            completed = CompletedTask.objects.all()
            if options["queue"]:
                completed = completed.filter(queue=options["queue"])
            if options["older_than"]:
                cutoff = timezone.now() - timedelta(seconds=options["older_than"])
                completed = completed.filter(run_at__lt=cutoff)
            count = completed.delete()[0]
            self.stdout.write(f"deleted {count} completed task(s)")
        if not acted:
            self._list(options)

    def _list(self, options: Any) -> None:
        if options["completed"]:
            queryset = CompletedTask.objects.all()
            if options["failed"]:
                queryset = queryset.failed()
        else:
            queryset = Task.objects.all()
        if options["queue"]:
            queryset = queryset.filter(queue=options["queue"])
        rows = []
        for task in queryset[: options["limit"]]:
            if isinstance(task, Task):
                state, when = _pending_state(task), task.locked_at or task.run_at
            else:
                state, when = task.state, task.run_at
            error = task.last_error.strip().splitlines()[-1][:60] if task.last_error else ""
            rows.append((str(task.id), state, task.queue or "", str(task)[:50],
                         str(task.priority), f"{task.attempts}/{task.max_attempts}",
                         _when(when), error))
        header = ("id", "state", "queue", "task", "priority", "attempts",
                  "finished_at" if options["completed"] else "run_at", "last_error")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths,
                                                                          strict=True)).rstrip())
        if not rows:
            self.stdout.write("no completed tasks" if options["completed"]
                              else "no scheduled or running tasks")
