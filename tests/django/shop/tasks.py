"""Tasks of the test project's shop app: native pgqueue tasks and Django Tasks."""

from __future__ import annotations

import time

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.task_options import pgqueue_options
from pgqueue.contrib.django.tasks_api import task
from shop.models import Order


@app.task(queue="emails")
def email_order(reference: str) -> str:
    """A native pgqueue task that writes through the ORM in the worker thread."""
    Order.objects.filter(reference=reference).update(emailed=True)
    return reference


@app.task(retry=False)
def sleeps_ignoring_abort(reference: str, seconds: float) -> None:
    """A sync task that never checks should_abort(): a shutdown can only release its job."""
    Order.objects.filter(reference=reference).update(emailed=True)
    time.sleep(seconds)


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="emails", priority=50)
def shout(message: str) -> dict:
    return {"message": message.upper(), "parts": (1, 2)}


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def with_context(context, label: str) -> dict:
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
async def async_add(a: int, b: int) -> int:
    return a + b


@task
def mark_emailed(reference: str) -> int:
    return Order.objects.filter(reference=reference).update(emailed=True)


@task
def returns_a_set() -> set:
    return {1, 2}


@pgqueue_options(max_attempts=3, timeout=20, unique_key="receipt-{reference}",
                 lock=lambda reference, customer="anyone": f"customer-{customer}",
                 concurrency_key="{customer}")
@task
def send_receipt(reference: str, customer: str = "anyone") -> str:
    return reference


@app.task
def weigh(reference: str) -> int:
    """A workflow step (tests/django/test_django_admin_workflows.py)."""
    return len(reference)


@app.task
def sum_weights(weights: list[int], label: str = "total") -> dict:
    """A chord's callback: its parents' results first."""
    return {label: sum(weights)}


@task
def repeat(text: str, times: int) -> str:
    """Returns a value as big as asked (the result size cap)."""
    return text * times


@app.task(pass_context=True)
def resize_images(context, count: int) -> int:
    """Reports its progress and meta (the admin's job page shows them)."""
    for done in range(1, count + 1):
        context.set_progress(done / count, f"resized {done} of {count}")
    context.set_meta(sizes=[64, 256, 1024])
    return count
