"""The article's tasks, written against django-background-tasks; only the import differs."""

from newsletter.models import Run
from pgqueue.contrib.django.background import background


@background(schedule=10)
def send_newsletter():
    # Task logic goes here
    Run.objects.create(name="send_newsletter")


@background(schedule=5)
def generate_report():
    # Task logic goes here
    Run.objects.create(name="generate_report")
