"""The report job, written for Django's Tasks framework: nothing here names pgqueue; the
``TASKS`` setting routes it to `PgQueueBackend`."""

from __future__ import annotations

from django.utils import timezone

from demo.newsletter.models import Subscriber
from demo.reports.models import Report

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # the backport, on Django 5.2


@task(queue_name="reports", priority=10)
def build_report(report_id: int) -> dict[str, object]:
    report = Report.objects.select_related("issue").get(pk=report_id)
    subscribers = Subscriber.objects.count()
    delivered = report.issue.deliveries.count()
    report.data = {"issue": report.issue.subject, "subscribers": subscribers,
                   "delivered": delivered, "not_delivered": subscribers - delivered}
    report.finished_at = timezone.now()
    report.save(update_fields=["data", "finished_at"])
    return report.data
