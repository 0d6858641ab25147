"""Sending an issue: the view saves it and enqueues its job in one transaction."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from demo.newsletter.models import Issue, Subscriber
from demo.newsletter.tasks import send_issue
from demo.reports.models import Report


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "index.html", {
        "subscribers": Subscriber.objects.count(),
        "issues": Issue.objects.order_by("-id")[:5],
        "reports": Report.objects.order_by("-id")[:5],
    })


@require_POST
def create_issue(request: HttpRequest) -> JsonResponse:
    """Save the issue and enqueue its sending together: `send_issue.defer` runs on Django's
    connection, inside this `atomic()` block, so both commit or neither does. With
    ``dry_run=1`` everything runs and is then rolled back: no issue, and no job."""
    subject = request.POST.get("subject", "").strip()
    if not subject:
        return JsonResponse({"error": "subject is required"}, status=400)
    dry_run = request.POST.get("dry_run") == "1"
    with transaction.atomic():
        issue = Issue.objects.create(subject=subject, body=request.POST.get("body", ""))
        issue.send_job_id = send_issue.defer(issue.id)
        issue.save(update_fields=["send_job_id"])
        if dry_run:
            transaction.set_rollback(True)
    return JsonResponse({"issue": issue.id, "send_job": issue.send_job_id,
                         "rolled_back": dry_run}, status=200 if dry_run else 201)


def issue_progress(request: HttpRequest, issue_id: int) -> JsonResponse:
    issue = get_object_or_404(Issue, pk=issue_id)
    return JsonResponse({"issue": issue.id, "subject": issue.subject,
                         "subscribers": Subscriber.objects.count(),
                         "delivered": issue.deliveries.count()})
