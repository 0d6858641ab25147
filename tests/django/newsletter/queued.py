"""django-background-tasks' documentation, "Multiple Queues" (import changed)."""

from django.contrib.auth.models import User

from pgqueue.contrib.django.background import background


@background(queue='my-queue')
def notify_user(user_id):
    user = User.objects.get(pk=user_id)
    user.email_user('Here is a notification', 'You have been notified')
