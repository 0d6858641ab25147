"""The newsletter's jobs, on pgqueue's own API (`@app.task`, `.defer()`, `@app.periodic`).

`send_issue` fans an issue out to every subscriber: one `deliver_issue` job each. Deliveries
retry twice, half a second apart, so a mail server that times out once costs half a second and a
refused address fails after three attempts, its error and traceback kept for the admin.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.mail import send_mail

import pgqueue
from demo.newsletter.audience import BOUNCING_DOMAIN, SLOW_DOMAIN
from demo.newsletter.models import Delivery, Issue, Subscriber
from pgqueue.contrib.django.app import app

SNAPSHOT_EVERY = timedelta(seconds=5)


class MailboxUnavailable(Exception):
    """The receiving mail server refused the address for good (SMTP 550)."""


@app.task(queue="emails", pass_context=True)
def send_issue(context: pgqueue.JobContext, issue_id: int) -> None:
    """One delivery job per subscriber, enqueued in the transaction that also marks this job
    succeeded (`context.atomic()`): a crash can neither lose the fan-out nor enqueue it twice."""
    subscriber_ids = Subscriber.objects.order_by("id").values_list("id", flat=True)
    with context.atomic() as connection:
        deliver_issue.defer_many([(issue_id, subscriber_id) for subscriber_id in subscriber_ids],
                                 connection=connection)


# Priority -10: a bulk send yields to every other job (reports, the periodic snapshot).
@app.task(queue="emails", priority=-10, pass_context=True,
          retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0.5))
def deliver_issue(context: pgqueue.JobContext, issue_id: int,
                  subscriber_id: int) -> dict[str, object]:
    issue = Issue.objects.get(pk=issue_id)
    subscriber = Subscriber.objects.get(pk=subscriber_id)
    domain = subscriber.email.rpartition("@")[2]
    if domain == SLOW_DOMAIN and context.attempt == 1:
        raise ConnectionError(f"{domain}: 421 4.4.2 connection timed out, try again later")
    if domain == BOUNCING_DOMAIN:
        raise MailboxUnavailable(f"550 5.1.1 <{subscriber.email}>: mailbox unavailable")
    send_mail(issue.subject, issue.body, "news@pgqueue.example", [subscriber.email])
    # A job runs at least once: a rerun after a crash must not record a second delivery.
    Delivery.objects.bulk_create([Delivery(issue=issue, subscriber=subscriber,
                                           attempt=context.attempt)], ignore_conflicts=True)
    return {"to": subscriber.email, "attempt": context.attempt}


@app.periodic(every=SNAPSHOT_EVERY)
@app.task(queue="maintenance")
def audience_snapshot() -> dict[str, int]:
    """Every 5 seconds (nightly, in a real project): one job per tick, however many workers."""
    return {"subscribers": Subscriber.objects.count(), "deliveries": Delivery.objects.count()}
