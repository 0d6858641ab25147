"""pgqueue as a user writes it: an App and a no-op task (`pgqueue --app ... worker`)."""

from __future__ import annotations

from benchmarks.record import record
from pgqueue import App

app = App()  # PGQUEUE_DSN


@app.task(name="noop")
async def noop(i: int) -> None:
    record(i)


@app.task(name="noop_sync")
def noop_sync(i: int) -> None:
    record(i)
