"""The admin for jobs: list with filters and search, detail with arguments, result, error and
traceback, actions retry / cancel / delete, and a per-queue summary.

Built for tables of millions of rows: the list never counts every row (see `paginator`), filter
choices come from recent jobs only, facets are off, and only the primary key sorts (every other
sort would read the whole table).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job
from pgqueue.contrib.django.paginator import EstimatedCountPaginator

RECENT_JOBS_FOR_CHOICES = 10_000


def _recent_values(field: str) -> list[str]:
    """Distinct values of `field` among the latest jobs (a primary-key range, not a scan)."""
    newest = Job.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None:
        return []
    return sorted(Job.objects.filter(id__gt=newest - RECENT_JOBS_FOR_CHOICES)
                  .order_by().values_list(field, flat=True).distinct())


class RecentValueFilter(admin.SimpleListFilter):
    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in _recent_values(self.field)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class QueueFilter(RecentValueFilter):
    title = "queue"
    parameter_name = "queue"
    field = "queue"


class TaskFilter(RecentValueFilter):
    title = "task"
    parameter_name = "task_name"
    field = "task_name"


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "queue", "state", "priority", "attempts_display",
                    "run_at", "enqueued_at", "finished_at", "error_summary")
    list_display_links = ("id", "task_name")
    list_filter = ("state", QueueFilter, TaskFilter,
                   ("enqueued_at", admin.DateFieldListFilter),
                   ("run_at", admin.DateFieldListFilter),
                   ("finished_at", admin.DateFieldListFilter))
    search_fields = ("task_name", "queue", "error_type", "error_message")
    search_help_text = "A job id, or part of a task name, queue, error type or message."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    sortable_by = ("id",)
    list_per_page = 50
    actions = ("retry_jobs", "cancel_jobs", "delete_selected")
    change_list_template = "admin/pgqueue/job/change_list.html"
    fieldsets = (
        (None, {"fields": ("id", "task_name", "queue", "state", "priority", "attempts",
                           "max_attempts", "worker_id", "abort_requested")}),
        ("Times", {"fields": ("enqueued_at", "run_at", "started_at", "finished_at")}),
        ("Arguments and result", {"fields": ("args_pretty", "kwargs_pretty", "result_pretty")}),
        ("Error", {"fields": ("error_type", "error_message", "traceback_pretty")}),
    )
    readonly_fields = ("id", "task_name", "queue", "state", "priority", "attempts",
                       "max_attempts", "worker_id", "abort_requested", "enqueued_at", "run_at",
                       "started_at", "finished_at", "args_pretty", "kwargs_pretty",
                       "result_pretty", "error_type", "error_message", "traceback_pretty")

    if hasattr(admin, "ShowFacets"):
        show_facets = admin.ShowFacets.NEVER  # a count per filter choice would scan the table

    # -- columns -------------------------------------------------------------------------

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="error")
    def error_summary(self, job: Job) -> str:
        if not job.error_type:
            return ""
        return f"{job.error_type}: {job.error_message or ''}"[:80]

    @admin.display(description="args")
    def args_pretty(self, job: Job) -> str:
        return _pretty_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_pretty(self, job: Job) -> str:
        return _pretty_json(job.kwargs)

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> str:
        return _pretty_json(job.result) if job.state == "succeeded" else "-"

    @admin.display(description="traceback")
    def traceback_pretty(self, job: Job) -> str:
        return format_html("<pre>{}</pre>", job.error_traceback) if job.error_traceback else "-"

    # -- search, permissions -------------------------------------------------------------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        term = search_term.strip().lstrip("#")
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are enqueued by code; `manage.py pgqueue defer` for one by hand

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        """Every field is read-only: state changes go through the actions only."""

    # -- actions -------------------------------------------------------------------------

    @admin.action(description="Retry selected finished jobs now", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        retried = sum(app.retry_job(job_id) for job_id in ids)
        self.message_user(request, f"{retried} job(s) queued again"
                          + (f"; {len(ids) - retried} not finished, left alone"
                             if retried < len(ids) else ""),
                          messages.SUCCESS if retried else messages.WARNING)

    @admin.action(description="Cancel selected jobs (abort running ones)",
                  permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        outcomes = [app.cancel_job(job_id) for job_id in queryset.values_list("id", flat=True)]
        cancelled = outcomes.count("cancelled")
        aborting = outcomes.count("running")
        finished = len(outcomes) - cancelled - aborting
        self.message_user(request, f"{cancelled} cancelled, {aborting} running (abort "
                          f"requested), {finished} already finished")

    # -- per-queue summary ---------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        summary = path("summary/", self.admin_site.admin_view(self.summary_view),
                       name="pgqueue_job_summary")
        return [summary, *super().get_urls()]

    def summary_view(self, request: HttpRequest) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.model._meta,
            "stats": app.queue_stats(),
            "changelist_url": reverse("admin:pgqueue_job_changelist"),
        }
        return TemplateResponse(request, "admin/pgqueue/job/summary.html", context)
