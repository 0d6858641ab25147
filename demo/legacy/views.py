"""The article's view, scheduling its tasks with ``Task.objects.create``. For
django-background-tasks the import was ``from background_task.models import Task``."""

from datetime import timedelta

from django.http import JsonResponse
from django.utils import timezone

from demo.legacy.tasks import generate_report
from pgqueue.contrib.django.background.models import Task


def some_view(request):
    # Schedule the 'send_newsletter' task to run immediately
    newsletter = Task.objects.create(task_name='send_newsletter')

    # Schedule the 'generate_report' task to run after a delay of 1 hour
    report = Task.objects.create(task_name='generate_report',
                                 run_at=timezone.now() + timedelta(hours=1))

    return JsonResponse({"send_newsletter": newsletter.id, "generate_report": report.id})


def report_soon(request):
    # Calling the task schedules it with the decorator's schedule: 5 seconds from now.
    task = generate_report()
    return JsonResponse({"generate_report": task.id, "run_at": task.run_at.isoformat()})
