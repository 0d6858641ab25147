"""Reports: enqueued through Django's Tasks framework, inside the transaction that saves them."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from demo.newsletter.models import Issue
from demo.reports.models import Report
from demo.reports.tasks import build_report


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


def report_detail(request: HttpRequest, report_id: int) -> JsonResponse:
    report = get_object_or_404(Report, pk=report_id)
    result = build_report.get_result(report.task_result_id)
    return JsonResponse({"report": report.id, "status": result.status.value,
                         "data": report.data})
