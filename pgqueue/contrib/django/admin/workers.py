"""The workers page (``pgqueue.workers_overview``): alive or not, slots busy, server
connections, last heartbeat, what each one runs now. Read-only: a worker is stopped where it
runs (SIGTERM), and a dead one's jobs are rescued by the others."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from pgqueue.contrib.django.admin.display import NONE, badge, seconds, when
from pgqueue.contrib.django.models import Worker


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("name", "host", "status", "slots_busy", "server_connections",
                    "last_heartbeat", "up_for", "serves", "running")
    list_display_links = ("name",)
    actions = None
    change_list_template = "admin/pgqueue/worker/change_list.html"
    fields = ("id", "name", "host", "status", "slots_busy", "server_connections",
              "last_heartbeat", "started", "up_for", "serves", "running",
              "longest_running")
    readonly_fields = fields

    @admin.display(description="host")
    def host(self, worker: Worker) -> str:
        return f"{worker.hostname} (pid {worker.pid})"

    @admin.display(description="alive")
    def status(self, worker: Worker) -> str:
        return badge("alive") if worker.alive else badge("dead")

    @admin.display(description="slots busy")
    def slots_busy(self, worker: Worker) -> str:
        return f"{worker.running_jobs} / {worker.concurrency}"

    @admin.display(description="last heartbeat")
    def last_heartbeat(self, worker: Worker) -> str:
        if worker.heartbeat_age_seconds is None:
            return "declared dead"
        return f"{seconds(worker.heartbeat_age_seconds)} ago"

    @admin.display(description="started")
    def started(self, worker: Worker) -> str:
        return when(worker.started_at)

    @admin.display(description="up for")
    def up_for(self, worker: Worker) -> str:
        return seconds(worker.uptime_seconds)

    @admin.display(description="queues")
    def serves(self, worker: Worker) -> str:
        return ", ".join(worker.queues) if worker.queues else "all"

    @admin.display(description="running now")
    def running(self, worker: Worker) -> str:
        return ", ".join(worker.running_tasks or ()) or NONE

    @admin.display(description="longest running")
    def longest_running(self, worker: Worker) -> str:
        return seconds(worker.longest_running_seconds)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
