"""Reports: enqueued through Django's Tasks framework, or as a pgqueue chord, inside the
transaction that saves them."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from demo.newsletter.models import Issue
from demo.reports.models import Report
from demo.reports.tasks import (
    assemble_report,
    build_report,
    count_delivered,
    count_retried,
    count_subscribers,
)
from pgqueue import chord


@require_POST
def create_report(request: HttpRequest) -> JsonResponse:
    """`build_report.enqueue()` runs on Django's connection too: inside `atomic()` the report
    row and its job commit together."""
    issue = get_object_or_404(Issue, pk=request.POST.get("issue") or 0)
    with transaction.atomic():
        report = Report.objects.create(issue=issue)
        result = build_report.enqueue(report.id)
        report.task_result_id = result.id
        report.save(update_fields=["task_result_id"])
    return JsonResponse({"report": report.id, "task_result": result.id,
                         "status": result.status.value}, status=201)


@require_POST
def create_report_by_chord(request: HttpRequest) -> JsonResponse:
    """Three counting jobs in parallel, then `assemble_report` once with their three results:
    the whole workflow (4 jobs, 3 dependency edges) is written in this `atomic()` block, with
    the report row."""
    issue = get_object_or_404(Issue, pk=request.POST.get("issue") or 0)
    with transaction.atomic():
        report = Report.objects.create(issue=issue)
        workflow = chord([count_subscribers.s(issue.id), count_delivered.s(issue.id),
                          count_retried.s(issue.id)],
                         assemble_report.s(report.id)).defer()
    return JsonResponse({"report": report.id, "workflow": str(workflow.workflow_id),
                         "jobs": list(workflow.job_ids), "callback": workflow.last_job_ids[0]},
                        status=201)


def report_detail(request: HttpRequest, report_id: int) -> JsonResponse:
    report = get_object_or_404(Report, pk=report_id)
    if report.task_result_id:  # built by the Django Task
        status = build_report.get_result(report.task_result_id).status.value
    else:  # built by the chord
        status = "SUCCESSFUL" if report.finished_at else "RUNNING"
    return JsonResponse({"report": report.id, "status": status, "data": report.data})
