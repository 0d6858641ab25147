"""The issue report, built two ways.

`build_report`, written for Django's Tasks framework: nothing in it names pgqueue; the ``TASKS``
setting routes it to `PgQueueBackend`.

The same report as a pgqueue workflow (`views.create_report_by_chord`): a chord whose three
header jobs each count one figure, in parallel, and whose callback, `assemble_report`, runs
exactly once after all three succeeded, receiving their results as a list (in header order)
before its own arguments. The release of the callback happens in the acknowledgement of the
last header job, in the same transaction: no fan-in can run twice or be lost.
"""

from __future__ import annotations

from django.utils import timezone

from demo.newsletter.models import Delivery, Subscriber
from demo.reports.models import Report
from pgqueue.contrib.django.app import app

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


@app.task(queue="reports")
def count_subscribers(issue_id: int) -> int:
    return Subscriber.objects.count()


@app.task(queue="reports")
def count_delivered(issue_id: int) -> int:
    return Delivery.objects.filter(issue_id=issue_id).count()


@app.task(queue="reports")
def count_retried(issue_id: int) -> int:
    return Delivery.objects.filter(issue_id=issue_id, attempt__gt=1).count()


@app.task(queue="reports")
def assemble_report(figures: list[int], report_id: int) -> dict[str, object]:
    """The chord's callback: `figures` are the header's results, in header order."""
    subscribers, delivered, on_retry = figures
    report = Report.objects.select_related("issue").get(pk=report_id)
    report.data = {"issue": report.issue.subject, "subscribers": subscribers,
                   "delivered": delivered, "not_delivered": subscribers - delivered,
                   "delivered_on_retry": on_retry}
    report.finished_at = timezone.now()
    report.save(update_fields=["data", "finished_at"])
    return report.data
