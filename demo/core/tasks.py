"""The jobs of the article we started from: a newsletter to many subscribers and a report,
plus a flaky task that succeeds on retry and one that fails for good."""

from __future__ import annotations

import asyncio
import hashlib

import pgqueue

app = pgqueue.App()


@app.task(queue="emails", retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed",
                                                     base_delay=0.2))
def send_newsletter(subscriber: str, issue: int) -> dict[str, object]:
    """Stands in for an SMTP call: renders a message and returns its digest."""
    body = f"Issue {issue} for {subscriber}"
    return {"to": subscriber, "digest": hashlib.sha256(body.encode()).hexdigest()[:12]}


@app.task(queue="reports", priority=10, timeout=30)
async def generate_report(month: str, rows: int) -> dict[str, object]:
    """An async task: runs on the worker's event loop."""
    await asyncio.sleep(0.05)
    return {"month": month, "rows": rows, "total": sum(range(rows))}


@app.task(retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0.2),
          pass_context=True)
def flaky_sync(context: pgqueue.JobContext, order_id: int) -> str:
    """Fails on its first attempt, succeeds on the retry."""
    if context.attempt == 1:
        raise ConnectionError("payment gateway timed out")
    return f"order {order_id} synced on attempt {context.attempt}"


@app.task(retry=False)
def always_fails(reason: str) -> None:
    raise ValueError(reason)
