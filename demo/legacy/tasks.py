"""The article's two background tasks. For django-background-tasks the import was
``from background_task import background``; nothing else changed but the task logic, which the
article leaves to the reader."""

from demo.newsletter.models import Delivery, Issue, Subscriber
from pgqueue.contrib.django.background import background


@background(schedule=10)
def send_newsletter():
    # Task logic goes here
    latest = Issue.objects.order_by("-id").first()
    return {"latest_issue": latest.subject if latest else None,
            "subscribers": Subscriber.objects.count()}


@background(schedule=5)
def generate_report():
    # Task logic goes here
    return {"issues": Issue.objects.count(), "deliveries": Delivery.objects.count()}
