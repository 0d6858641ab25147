"""The periodic schedules page: each schedule's timing, state, next and last run, with pause,
resume and run-now actions (each one statement through the SQL functions and named queries, so
a DBA in psql and this page do the same thing)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from pgqueue.contrib.django import conf
from pgqueue.contrib.django.admin.display import NONE, badge, period, when
from pgqueue.contrib.django.connection import run_on_django
from pgqueue.contrib.django.models import Schedule
from pgqueue.contrib.django.queries import DjangoCall


def schedule_state(schedule: Schedule) -> str:
    """orphaned (no longer in code), paused, ended (past ends_at), or active."""
    if schedule.orphaned:
        return "orphaned"
    if schedule.paused:
        return "paused"
    ended = (schedule.ends_at is not None and schedule.next_tick_at is not None
             and schedule.next_tick_at > schedule.ends_at)
    return "ended" if ended else "active"


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "timing", "state", "next_run", "last_run", "last_job",
                    "skipped_ticks", "overlap_shown")
    list_display_links = ("id",)
    actions = ("pause_selected", "resume_selected", "run_selected_now", "delete_selected")
    change_list_template = "admin/pgqueue/schedule/change_list.html"
    fields = ("id", "task_name", "timing", "state", "next_run", "last_run", "last_job", "queue",
              "priority", "max_attempts", "args", "kwargs", "misfire", "origin", "ends_at",
              "skipped_ticks", "overlap_shown", "paused_at", "created_at")
    readonly_fields = fields
    search_fields = ("id", "task_name")

    @admin.display(description="overlap")
    def overlap_shown(self, schedule: Schedule) -> str:
        """`yes`, or `no (N skipped)`: ticks skipped while the previous job ran."""
        return "yes" if schedule.overlap else f"no ({schedule.overlap_skipped_ticks} skipped)"

    @admin.display(description="timing")
    def timing(self, schedule: Schedule) -> str:
        if schedule.cron is not None:
            return (schedule.cron if schedule.timezone == "UTC"
                    else f"{schedule.cron} ({schedule.timezone})")
        return f"every {period(schedule.every)}" if schedule.every else NONE

    @admin.display(description="state")
    def state(self, schedule: Schedule) -> str:
        return badge(schedule_state(schedule))

    @admin.display(description="next run", ordering="next_tick_at")
    def next_run(self, schedule: Schedule) -> str:
        if schedule.paused or schedule.orphaned:
            return NONE
        return when(schedule.next_tick_at) if schedule.next_tick_at else "at the next pass"

    @admin.display(description="last run", ordering="last_tick_at")
    def last_run(self, schedule: Schedule) -> str:
        return when(schedule.last_tick_at)

    @admin.display(description="last job")
    def last_job(self, schedule: Schedule) -> str:
        if schedule.last_job_id is None:
            return NONE
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:pgqueue_job_change", args=[schedule.last_job_id]), schedule.last_job_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # declared in code (@periodic, PGQUEUE_PERIODIC) or by programs

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)  # actions, not edits

    def _run(self, query_name: str, queryset: QuerySet[Schedule]) -> list[Any]:
        ids = list(queryset.values_list("id", flat=True))
        return run_on_django(DjangoCall(query_name, {"ids": ids}), conf.database_alias())

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        rows = self._run("pause_schedules", queryset)
        self.message_user(request, f"{rows[0]['changed']} schedule(s) paused", messages.SUCCESS)

    @admin.action(description="Resume selected schedules (missed ticks are not run)",
                  permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        rows = self._run("resume_schedules", queryset)
        self.message_user(request, f"{rows[0]['changed']} schedule(s) resumed",
                          messages.SUCCESS)

    @admin.action(description="Run selected schedules now (one job each, off schedule)",
                  permissions=["change"])
    def run_selected_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        rows = self._run("run_schedules_now", queryset)
        jobs = ", ".join(str(row["id"]) for row in rows)
        self.message_user(request, f"{len(rows)} job(s) enqueued: {jobs}", messages.SUCCESS)
