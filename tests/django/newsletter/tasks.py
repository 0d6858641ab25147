"""Background tasks written against django-background-tasks; only the imports differ.

The first two are the article's; the others are from that library's documentation.
"""

from django.contrib.auth.models import User

from newsletter import queued  # noqa: F401  ("Multiple Queues": registered on import)
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


# "Creating and registering tasks":
@background(schedule=60)
def notify_user(user_id):
    # lookup user by id and send them a message
    user = User.objects.get(pk=user_id)
    user.email_user('Here is a notification', 'You have been notified')


# "Scheduling the same task twice":
@background(remove_existing_tasks=True)
def recalculate_data():
    Run.objects.create(name="recalculate_data")
