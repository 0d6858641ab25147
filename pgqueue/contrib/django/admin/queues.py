"""The queues page: per queue what waits, runs and failed, how long jobs wait, its limits and
what holds its due jobs back (``pgqueue.queue_overview``); pause and resume (bulk, one
statement), and a queue's page to change its limits (``pgqueue.set_queue_limit``) or hand them
back to the code's declaration.

Every change goes through the SQL functions a DBA would call, so workers see it at their next
claim, whichever tool made it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from pgqueue import store
from pgqueue.contrib.django import conf
from pgqueue.contrib.django.admin.display import NONE, badge, seconds, when
from pgqueue.contrib.django.connection import run_on_django
from pgqueue.contrib.django.models import Queue
from pgqueue.contrib.django.queries import DjangoCall
from pgqueue.errors import InvalidLimit
from pgqueue.limits import MAX_LIMIT, QueueLimits


def _jobs_link(queue: str, state: str | None, text: object) -> str:
    url = reverse("admin:pgqueue_job_changelist") + f"?queue={queue}"
    if state:
        url += f"&state__exact={state}"
    return format_html('<a href="{}">{}</a>', url, text)


class QueueLimitsForm(forms.ModelForm):
    """The three limits of a queue; empty clears one. Checked as `App.queue()` checks them."""

    concurrency = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT,
                                     help_text="At most this many of its jobs running at once, "
                                               "on all workers together.")
    per_key_concurrency = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_LIMIT,
        help_text="At most this many running at once per concurrency key.")
    rate_limit = forms.CharField(required=False, help_text=(
        "At most N starts per period: 10/s, 100/m, 1000/h or 5/d."))

    class Meta:
        model = Queue
        fields = ("concurrency", "per_key_concurrency", "rate_limit")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:
            self.limits = QueueLimits(self.instance.queue,
                                      concurrency=cleaned.get("concurrency"),
                                      per_key_concurrency=cleaned.get("per_key_concurrency"),
                                      rate_limit=cleaned.get("rate_limit") or None)
        except InvalidLimit as exc:
            raise forms.ValidationError(str(exc)) from exc
        return cleaned


class OneReadChangeList(ChangeList):
    """The queues page reads its view once: it scans the jobs table (about 3 s for a million
    jobs), and Django's changelist would read it twice, to count and then to list."""

    def get_results(self, request: HttpRequest) -> None:
        rows = list(self.queryset)
        self.result_count = self.full_result_count = len(rows)
        self.result_list = rows
        self.can_show_all, self.multi_page = True, False
        self.paginator = self.model_admin.get_paginator(request, rows, max(len(rows), 1))


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("queue_name", "state", "due", "scheduled", "waiting_on_lock",
                    "running_of_limit", "failed_jobs", "oldest_wait", "waits", "limits",
                    "held_back")
    list_display_links = ("queue_name",)
    actions = ("pause_selected", "resume_selected")
    show_full_result_count = False
    form = QueueLimitsForm
    change_list_template = "admin/pgqueue/queue/change_list.html"
    change_form_template = "admin/pgqueue/queue/change_form.html"
    fieldsets = (
        ("Limits", {"fields": ("concurrency", "per_key_concurrency", "rate_limit"),
                    "description": "Enforced by the database across every worker. An "
                                   "operator's limits stand until reset; limits declared in "
                                   "code (App.queue) are written again at each worker start "
                                   "otherwise."}),
        ("Now", {"fields": ("state", "due", "scheduled", "waiting_on_lock", "running",
                            "started_in_rate_window", "held_back", "oldest_wait", "wait_p50",
                            "wait_p95", "succeeded", "failed", "cancelled", "limits_set_by",
                            "paused_since", "paused_by")}),
    )
    readonly_fields = ("state", "due", "scheduled", "waiting_on_lock", "running",
                       "started_in_rate_window", "held_back", "oldest_wait", "wait_p50",
                       "wait_p95", "succeeded", "failed", "cancelled", "limits_set_by",
                       "paused_since", "paused_by")

    # -- columns -------------------------------------------------------------------------

    @admin.display(description="queue", ordering="queue")
    def queue_name(self, queue: Queue) -> str:
        return queue.queue

    @admin.display(description="state")
    def state(self, queue: Queue) -> str:
        return badge("paused") if queue.paused else badge("active")

    @admin.display(description="running")
    def running_of_limit(self, queue: Queue) -> str:
        link = _jobs_link(queue.queue, "running", queue.running)
        if queue.concurrency is None:
            return link
        return format_html("{} / {}", link, queue.concurrency)

    @admin.display(description="failed")
    def failed_jobs(self, queue: Queue) -> str:
        return _jobs_link(queue.queue, "failed", queue.failed)

    @admin.display(description="oldest wait")
    def oldest_wait(self, queue: Queue) -> str:
        return seconds(queue.oldest_waiting_seconds)

    @admin.display(description="wait p50 / p95")
    def waits(self, queue: Queue) -> str:
        """Over the attempts started in the last 5 minutes."""
        if queue.wait_p50_seconds is None:
            return NONE
        return f"{seconds(queue.wait_p50_seconds)} / {seconds(queue.wait_p95_seconds)}"

    @admin.display(description="wait p50 (5 min)")
    def wait_p50(self, queue: Queue) -> str:
        return seconds(queue.wait_p50_seconds)

    @admin.display(description="wait p95 (5 min)")
    def wait_p95(self, queue: Queue) -> str:
        return seconds(queue.wait_p95_seconds)

    @admin.display(description="limits")
    def limits(self, queue: Queue) -> str:
        parts = []
        if queue.concurrency is not None:
            parts.append(f"{queue.concurrency} at once")
        if queue.per_key_concurrency is not None:
            parts.append(f"{queue.per_key_concurrency} per key")
        if queue.rate_limit is not None:
            parts.append(queue.rate_limit)
        return ", ".join(parts) or NONE

    @admin.display(description="held back by")
    def held_back(self, queue: Queue) -> str:
        return badge(queue.held_back_by, "held") if queue.held_back_by else ""

    @admin.display(description="paused since")
    def paused_since(self, queue: Queue) -> str:
        return when(queue.paused_at)

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Due jobs no live worker has the task of wait here unseen otherwise: say so."""
        unserved = run_on_django(store.unserved_jobs(), conf.database_alias())
        if unserved and request.method == "GET":
            self.message_user(request, f"{sum(row['due'] for row in unserved)} due jobs wait for "
                              "a worker that has their task: " + ", ".join(
                                  f"{row['task_name']} in {row['queue']} ({row['due']})"
                                  for row in unserved[:10]), messages.WARNING)
        return super().changelist_view(request, extra_context)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return OneReadChangeList

    # -- permissions ---------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a queue exists once a job, a limit or a pause names it

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # -- changing limits -----------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Queue, form: Any, change: bool) -> None:
        """The three limits through pgqueue.set_queue_limit, in the admin's transaction."""
        alias = conf.database_alias()
        for name, value in form.limits.settings().items():
            run_on_django(store.set_queue_limit(queue=obj.queue, limit_name=name,
                                                limit_value=value), alias)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # the view's row has no integer id for the admin log; the SQL records it

    def response_change(self, request: HttpRequest, obj: Queue) -> HttpResponse:
        if "_reset_limits" in request.POST:
            run_on_django(store.reset_queue_limits(queue=obj.queue), conf.database_alias())
            self.message_user(request, f"Limits of {obj.queue} reset: its declaration in code "
                              "applies again at the next worker start.", messages.SUCCESS)
        else:
            self.message_user(request, f"Limits of {obj.queue} saved.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:pgqueue_queue_changelist"))

    # -- bulk actions: one statement each ------------------------------------------------

    @admin.action(description="Pause selected queues", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._pause_or_resume(request, queryset, "pause")

    @admin.action(description="Resume selected queues", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        self._pause_or_resume(request, queryset, "resume")

    def _pause_or_resume(self, request: HttpRequest, queryset: QuerySet[Queue],
                         verb: str) -> None:
        queues = list(queryset.values_list("queue", flat=True))
        rows = run_on_django(DjangoCall(f"{verb}_queues", {"queues": queues}),
                             conf.database_alias())
        changed = rows[0]["changed"]
        self.message_user(request, f"{changed} queue(s) {verb}d"
                          + (f", {len(queues) - changed} already were" if changed < len(queues)
                             else ""), messages.SUCCESS)
