"""`python -m demo` (what `make demo` runs): the demo Django project, end to end, in one command.

Starts a throwaway PostgreSQL unless PGQUEUE_DSN or DATABASE_URL names a database, runs
``manage.py migrate``, then either the scripted run (the default: a real worker, the views driven
through Django's test client, a check of every outcome, a summary with timings and
``pgqueue.queue_stats``; exit status 1 if anything did not happen as expected) or, with
``--serve``, the development server and a worker until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from demo.database import DemoDatabase, database
from demo.output import Clock, duration
from demo.processes import manage
from pgqueue.embedded import PostgresBinariesNotFound

SETTINGS = "demo.project.settings"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true",
                        help="run the development server and a worker until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000, help="with --serve (default 8000)")
    args = parser.parse_args(argv)

    clock = Clock()
    print("pgqueue demo: a Django project that sends a newsletter and generates reports\n",
          flush=True)
    try:
        with database() as db:
            if not prepare(clock, db):
                return 1
            if args.serve:
                from demo.serve import serve

                return serve(clock, args.port)
            return scripted(clock)
    except PostgresBinariesNotFound as exc:
        print(f"{exc}\nInstall the PostgreSQL server binaries (Debian: apt install postgresql) "
              "or set PGQUEUE_DSN to a database the demo may use.", file=sys.stderr)
        return 1


def prepare(clock: Clock, db: DemoDatabase) -> bool:
    """Migrate the database with ``manage.py migrate``, set Django up here, seed subscribers."""
    clock.say(f"database: {db.description}"
              + (f", ready in {duration(db.ready_seconds)}" if db.ready_seconds else ""))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    started = time.perf_counter()
    migrated = manage("migrate", "--no-input")
    if migrated.returncode != 0:
        print(migrated.stdout + migrated.stderr, file=sys.stderr)
        clock.say("manage.py migrate failed")
        return False
    applied = migrated.stdout.count("Applying ")
    clock.say(f"manage.py migrate: {applied or 'no'} migrations applied in "
              f"{duration(time.perf_counter() - started)}")

    import django

    django.setup()
    from demo.newsletter.audience import seed_subscribers

    clock.say(f"{seed_subscribers()} subscribers")
    return True


def scripted(clock: Clock) -> int:
    from django.db import connections

    from demo.scenario import Scenario
    from demo.summary import print_summary
    from pgqueue.contrib.django.app import app

    with tempfile.TemporaryDirectory(prefix="pgqueue-demo-") as tmp:
        scenario = Scenario(clock, Path(tmp) / "worker.log")
        try:
            ok = scenario.run()
            print_summary(scenario)
        finally:
            app.close()
            connections.close_all()
        if not ok:
            print("\nlast lines of the worker's log:")
            print("\n".join(scenario.worker_log.read_text(errors="replace").splitlines()[-40:]))
    print(f"\ndemo {'OK' if ok else 'FAILED'} in {duration(clock.elapsed())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
