"""The demo's subscribers: readers on well-behaved mail servers, one on a server whose first
answer times out (its delivery succeeds on retry) and one whose server refuses the address (its
delivery fails for good and shows up in the admin)."""

from __future__ import annotations

from demo.newsletter.models import Subscriber

SUBSCRIBERS = 1000
SLOW_DOMAIN = "slow-mx.example"
BOUNCING_DOMAIN = "bounce.example"
SLOW_SUBSCRIBER = f"ada@{SLOW_DOMAIN}"
BOUNCING_SUBSCRIBER = f"nobody@{BOUNCING_DOMAIN}"


def seed_subscribers() -> int:
    """Create the subscribers that are missing (idempotent); return how many there are."""
    readers = [f"reader{n:04}@example.com" for n in range(1, SUBSCRIBERS - 1)]
    emails = [*readers, SLOW_SUBSCRIBER, BOUNCING_SUBSCRIBER]
    Subscriber.objects.bulk_create([Subscriber(email=email) for email in emails],
                                   ignore_conflicts=True, batch_size=500)
    return Subscriber.objects.count()
