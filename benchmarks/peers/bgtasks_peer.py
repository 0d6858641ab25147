"""django-background-tasks producer: calling the `@background` function enqueues; it has no
bulk API, so bulk is the same calls inside one `transaction.atomic()` (one commit)."""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers.django_settings")
os.environ["BENCH_DJANGO_APP"] = "background_task"

import django

django.setup()

from background_task.models import Task  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from benchmarks.peers import producer  # noqa: E402
from benchmarks.peers.bgtasks.tasks import noop  # noqa: E402


class BackgroundTasksPeer:
    def setup(self) -> None:
        call_command("migrate", verbosity=0)

    def template(self) -> int:
        noop(0)
        return Task.objects.latest("id").id

    def defer_one(self, index: int) -> None:
        noop(index)

    def defer_batch(self, indices: Sequence[int]) -> None:
        with transaction.atomic():
            for i in indices:
                noop(i)


if __name__ == "__main__":
    producer.main(BackgroundTasksPeer())
