from __future__ import annotations

from datetime import timedelta

import pgqueue
from pgqueue.periodic.declare import declared_schedules
from pgqueue.periodic.scheduler import run_scheduler


def test_app_periodic_stacks_above_app_task_and_installs_the_scheduler() -> None:
    app = pgqueue.App("postgresql://unused/x")

    @app.periodic(cron="*/5 * * * *")
    @app.periodic(every=timedelta(seconds=30), id="fast", kwargs={"full": False})
    @app.task(name="refresh")
    def refresh(full: bool = True) -> None: ...

    assert isinstance(refresh, pgqueue.Task)
    by_id = {schedule.id: schedule for schedule in declared_schedules(app)}
    assert set(by_id) == {"refresh", "fast"}
    assert by_id["refresh"].cron == "*/5 * * * *" and by_id["fast"].kwargs == {"full": False}
    assert run_scheduler in app.worker_services
