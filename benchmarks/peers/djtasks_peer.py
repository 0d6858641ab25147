"""django-tasks-db producer: `task.enqueue`; the framework has no bulk API, so bulk is the same
calls inside one `transaction.atomic()` (one commit)."""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers.django_settings")
os.environ["BENCH_DJANGO_APP"] = "tasks_db"

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from benchmarks.peers import producer  # noqa: E402
from benchmarks.peers.djtasks import noop  # noqa: E402


class DjangoTasksDbPeer:
    def setup(self) -> None:
        call_command("migrate", verbosity=0)

    def template(self) -> str:
        return str(noop.enqueue(0).id)

    def defer_one(self, index: int) -> None:
        noop.enqueue(index)

    def defer_batch(self, indices: Sequence[int]) -> None:
        with transaction.atomic():
            for i in indices:
                noop.enqueue(i)


if __name__ == "__main__":
    producer.main(DjangoTasksDbPeer())
