"""The jobs admin: a list that fits a laptop screen, filters and search, a job page that opens
on its state, error and traceback with Retry and Cancel buttons, and links to the jobs it runs
after and before and to its workflow (`?workflow_id=` lists a workflow's jobs), and bulk actions
that are one statement each.

Built for tables of millions of rows: the list never counts every row (see `paginator`), filter
choices come from recent jobs only, facets are off, and only the primary key sorts (every other
sort would read the whole table).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import django
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from pgqueue.canvas import workflow_state_of
from pgqueue.contrib.django import conf
from pgqueue.contrib.django.admin.display import badge, seconds, split_traceback, when
from pgqueue.contrib.django.connection import run_on_django
from pgqueue.contrib.django.models import Job
from pgqueue.contrib.django.paginator import EstimatedCountPaginator
from pgqueue.contrib.django.queries import DjangoCall
from pgqueue.types import JobState

RECENT_JOBS_FOR_CHOICES = 10_000
FINISHED = ("succeeded", "failed", "cancelled")
CANCELLABLE = ("queued", "waiting", "blocked", "running")
RELATIVES_SHOWN = 50
"""Parents and dependents listed on a job page, of each (a chord's callback may have
thousands of parents: the workflow's list has them all)."""
AFTER_SHOWN = 5
"""Parents linked in the workflow list's "after" column, per job."""


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


class WorkflowFilter(admin.SimpleListFilter):
    """`?workflow_id=UUID`: the jobs of one workflow (linked from a job page). It shows no
    choices in the sidebar (a list of workflow ids would help nobody), and Django's ChangeList
    runs only the filters it shows: `JobAdmin.get_queryset` applies it. Declared so the
    parameter is the admin's own, not taken for a field lookup."""

    title = "workflow"
    parameter_name = "workflow_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return False

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset


def _workflow_id(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def workflow_summary(workflow_id: uuid.UUID) -> dict[str, Any] | None:
    """The workflow's state and its jobs by state (None: no job has this workflow id)."""
    rows = run_on_django(DjangoCall("workflow_counts", {"workflow_id": workflow_id}),
                         conf.database_alias())
    if not rows:
        return None
    counts = {row["state"]: row["jobs"] for row in rows}
    state = workflow_state_of(counts, started=any(row["started"] for row in rows))
    ordered = [(s.value, counts[s.value]) for s in JobState if counts.get(s.value)]
    return {"id": workflow_id, "state": badge(state), "jobs": sum(counts.values()),
            "counts": ordered}


def job_relatives(job_id: int) -> dict[str, Any]:
    """The job's parents and dependents: at most RELATIVES_SHOWN of each, and how many."""
    rows = run_on_django(DjangoCall("job_relatives", {"id": job_id, "limit": RELATIVES_SHOWN}),
                         conf.database_alias())
    relatives: dict[str, Any] = {"parents": [], "dependents": [], "parents_total": 0,
                                 "dependents_total": 0}
    for row in rows:
        kind = f"{row['relation']}s"
        relatives[kind].append({"id": row["id"], "task_name": row["task_name"],
                                "state": badge(row["state"]) if row["state"] else "pruned"})
        relatives[f"{kind}_total"] = row["total"]
    return relatives


class QueueFilter(RecentValueFilter):
    title = "queue"
    parameter_name = "queue"
    field = "queue"


class TaskFilter(RecentValueFilter):
    title = "task"
    parameter_name = "task_name"
    field = "task_name"


def retry_jobs(ids: list[int]) -> list[int]:
    """Queue the finished ones of these jobs again now, in one statement: the ids retried."""
    rows = run_on_django(DjangoCall("retry_jobs", {"ids": ids}), conf.database_alias())
    return [row["id"] for row in rows]


def cancel_jobs(ids: list[int]) -> dict[int, str]:
    """Cancel these jobs in one statement: {id: 'cancelled' or 'running' (abort asked)}."""
    rows = run_on_django(DjangoCall("cancel_jobs", {"ids": ids}), conf.database_alias())
    return {row["id"]: row["state"] for row in rows}


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    # Narrow enough for a 1,400 px screen beside the admin's two sidebars: the error goes
    # under the task's name, and one column says when (finished, started or due).
    list_display = ("id", "task", "queue", "state_badge", "attempts_display", "when_display")
    list_display_links = ("id", "task")
    list_filter = ("state", QueueFilter, TaskFilter, WorkflowFilter,
                   ("enqueued_at", admin.DateFieldListFilter),
                   ("run_at", admin.DateFieldListFilter),
                   ("finished_at", admin.DateFieldListFilter))
    search_fields = ("task_name", "queue", "error_type", "error_message")
    search_help_text = "A job id, or part of a task name, queue, error type or message."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    sortable_by = ("id",)
    list_per_page = 50
    actions = ("retry_selected", "cancel_selected", "delete_selected")
    change_list_template = "admin/pgqueue/job/change_list.html"
    change_form_template = "admin/pgqueue/job/change_form.html"
    fieldsets = (
        ("Job", {"fields": ("id", "task_name", "queue", "priority", "worker_id",
                            "abort_requested", "timeout_seconds")}),
        ("Keys", {"fields": ("unique_key", "lock", "concurrency_key", "workflow_id")}),
        ("Arguments and result", {"fields": ("args_pretty", "kwargs_pretty", "result_pretty",
                                             "meta_pretty")}),
    )
    readonly_fields = ("id", "task_name", "queue", "priority", "worker_id", "abort_requested",
                       "timeout_seconds", "unique_key", "lock", "concurrency_key",
                       "workflow_id", "args_pretty", "kwargs_pretty", "result_pretty",
                       "meta_pretty")

    if hasattr(admin, "ShowFacets"):
        show_facets = admin.ShowFacets.NEVER  # a count per filter choice would scan the table

    # -- columns -------------------------------------------------------------------------

    @admin.display(description="state")
    def state_badge(self, job: Job) -> str:
        return badge(job.state)

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="when")
    def when_display(self, job: Job) -> str:
        if job.finished_at is not None:
            return format_html("finished {}", when(job.finished_at, short=True))
        if job.state == "running" and job.started_at is not None:
            if job.progress is not None:
                return format_html("started {} · {}%", when(job.started_at, short=True),
                                   round(job.progress * 100))
            return format_html("started {}", when(job.started_at, short=True))
        return format_html("due {}", when(job.run_at, short=True))

    @admin.display(description="task")
    def task(self, job: Job) -> str:
        if not job.error_type:
            return job.task_name
        text = f"{job.error_type}: {job.error_message or ''}"
        return format_html('{}<br><span class="pgq-error-cell" title="{}">{}</span>',
                           job.task_name, text[:2000], text[:200])

    @admin.display(description="after")
    def parents_display(self, job: Job) -> str:
        """The jobs it runs after, in a workflow's list (annotated by get_queryset)."""
        parent_ids = getattr(job, "parent_ids", None) or []
        if not parent_ids:
            return "\u2013"
        links = format_html_join(", ", '<a href="{}">#{}</a>', (
            (reverse("admin:pgqueue_job_change", args=[parent_id]), parent_id)
            for parent_id in parent_ids[:AFTER_SHOWN]))
        more = len(parent_ids) - AFTER_SHOWN
        return format_html("{} and {} more", links, more) if more > 0 else links

    @admin.display(description="args")
    def args_pretty(self, job: Job) -> str:
        return _pretty_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_pretty(self, job: Job) -> str:
        return _pretty_json(job.kwargs)

    @admin.display(description="result")
    def result_pretty(self, job: Job) -> str:
        return _pretty_json(job.result) if job.state == "succeeded" else "-"

    @admin.display(description="meta")
    def meta_pretty(self, job: Job) -> str:
        return _pretty_json(job.meta) if job.meta is not None else "-"

    # -- one workflow's jobs (?workflow_id=) ----------------------------------------------

    def _workflow_of(self, request: HttpRequest) -> uuid.UUID | None:
        return _workflow_id(request.GET.get(WorkflowFilter.parameter_name))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        queryset = super().get_queryset(request)
        if WorkflowFilter.parameter_name not in request.GET:
            return queryset
        workflow_id = self._workflow_of(request)
        if workflow_id is None:  # not a UUID: no job has it
            return queryset.none()
        # One subquery per row shown (job_dependencies_child_idx), not a join of the table.
        return queryset.filter(workflow_id=workflow_id).annotate(parent_ids=RawSQL(
            "ARRAY(SELECT d.parent_id FROM pgqueue.job_dependencies AS d "
            "WHERE d.child_id = \"pgqueue\".\"jobs\".id ORDER BY d.parent_id)", ()))

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        shown = tuple(super().get_list_display(request))
        if self._workflow_of(request) is None:
            return shown
        return (*shown[:4], "parents_display", *shown[4:])

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        """A workflow's jobs in enqueue order: each step after the ones it runs after."""
        return ("id",) if self._workflow_of(request) else tuple(super().get_ordering(request))

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        workflow_id = self._workflow_of(request)
        if workflow_id is not None:
            extra_context = {**(extra_context or {}),
                             "workflow": workflow_summary(workflow_id) or {"id": workflow_id},
                             "summary_in_object_tools": django.VERSION < (6, 0)}
        return super().changelist_view(request, extra_context)

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

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        """Every field is read-only: state changes go through the actions only."""

    # -- the job page --------------------------------------------------------------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        job = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False, "show_save_and_add_another": False}
        if job is not None:
            extra_context["job_summary"] = self.summary(job)
            extra_context["summary_in_object_tools"] = django.VERSION < (6, 0)
        return super().change_view(request, object_id, form_url, extra_context)

    def summary(self, job: Job) -> dict[str, Any]:
        """What the top of the job page shows: state, what went wrong, when, how long."""
        waited = (job.started_at - max(job.run_at, job.enqueued_at)
                  if job.started_at and job.started_at >= job.run_at else None)
        ran = (job.finished_at - job.started_at
               if job.finished_at and job.started_at and job.finished_at >= job.started_at
               else None)
        return {
            "job": job,
            "state": badge(job.state),
            "can_retry": job.state in FINISHED,
            "can_cancel": job.state in CANCELLABLE,
            "traceback": split_traceback(job.error_traceback) if job.error_traceback else None,
            "workflow": workflow_summary(job.workflow_id) if job.workflow_id else None,
            "relatives": job_relatives(job.id),
            "progress_percent": None if job.progress is None else round(job.progress * 100),
            "progress_age": seconds(timezone.now() - job.progress_at) if job.progress_at else "",
            "times": [("Enqueued", when(job.enqueued_at), ""),
                      ("Run at", when(job.run_at), ""),
                      ("Started", when(job.started_at),
                       f"waited {seconds(waited)}" if waited is not None else ""),
                      ("Finished", when(job.finished_at),
                       f"ran {seconds(ran)}" if ran is not None else "")],
        }

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<int:job_id>/retry/", self.admin_site.admin_view(self.retry_view),
                 name=f"{prefix}_retry"),
            path("<int:job_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name=f"{prefix}_cancel"),
            *super().get_urls(),
        ]

    def _back_to(self, job_id: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:pgqueue_job_change", args=[job_id]))

    def retry_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        return require_POST(self._retry_one)(request, job_id)

    def cancel_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        return require_POST(self._cancel_one)(request, job_id)

    def _retry_one(self, request: HttpRequest, job_id: int) -> HttpResponse:
        job = get_object_or_404(Job, pk=job_id)
        if not self.has_change_permission(request, job):
            return HttpResponse(status=403)
        if retry_jobs([job_id]):
            self.message_user(request, f"Job {job_id} queued again.", messages.SUCCESS)
        else:
            self.message_user(request, f"Job {job_id} was not retried: it is {job.state}, or "
                              "another job holds its unique key.", messages.WARNING)
        return self._back_to(job_id)

    def _cancel_one(self, request: HttpRequest, job_id: int) -> HttpResponse:
        job = get_object_or_404(Job, pk=job_id)
        if not self.has_change_permission(request, job):
            return HttpResponse(status=403)
        state = cancel_jobs([job_id]).get(job_id)
        if state == "cancelled":
            self.message_user(request, f"Job {job_id} cancelled.", messages.SUCCESS)
        elif state == "running":
            self.message_user(request, f"Job {job_id} is running: its worker was asked to "
                              "abort it.", messages.SUCCESS)
        else:
            self.message_user(request, f"Job {job_id} had already finished.", messages.WARNING)
        return self._back_to(job_id)

    # -- bulk actions: one statement each ------------------------------------------------

    @admin.action(description="Retry selected finished jobs now", permissions=["change"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        retried = len(retry_jobs(ids))
        left = len(ids) - retried
        self.message_user(request, f"{retried} job(s) queued again" + (
            f"; {left} not finished (or their unique key is held), left alone" if left else ""),
            messages.SUCCESS if retried else messages.WARNING)

    @admin.action(description="Cancel selected jobs (abort running ones)",
                  permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        outcomes = list(cancel_jobs(ids).values())
        cancelled, aborting = outcomes.count("cancelled"), outcomes.count("running")
        self.message_user(request, f"{cancelled} cancelled, {aborting} running (abort "
                          f"requested), {len(ids) - len(outcomes)} already finished")
