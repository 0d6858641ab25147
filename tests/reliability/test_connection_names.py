"""Every server connection of a `pgqueue worker` process carries an application_name that says
whose it is and what for, so a DBA can count them in pg_stat_activity: three per worker process.
The count per role is printed (`-s`) so it can be quoted."""

from __future__ import annotations

import psycopg

from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses


def _connections(dsn: str) -> dict[str, int]:
    """application_name -> server connections to this database, the caller's own left out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return dict(conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "GROUP BY application_name ORDER BY application_name").fetchall())


def test_every_connection_of_a_worker_process_is_named_by_role(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    worker = workers.start(rel_dsn, "-c", "4", "-n", "named")
    ids = core_app.add.defer_many([(n, n) for n in range(40)])
    core_app.app.close()  # the producer's own connections are not the worker's
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = "
                                       "'succeeded'") == len(ids),
               timeout=30, message="the jobs to run (the acknowledgement connection opens)")
    wait_until(lambda: "pgqueue worker named listen" in _connections(rel_dsn), timeout=10,
               message="the listener to connect")
    connections = _connections(rel_dsn)
    print(f"\n[connections] one `pgqueue worker -c 4` process: {sum(connections.values())} "
          f"server connections: {connections}")
    assert worker.poll() is None, workers.output(worker)
    assert all(name.startswith("pgqueue") for name in connections), connections
    # Exactly three: claims, acknowledgements (with every background service), LISTEN.
    assert connections == {f"pgqueue worker named {role}": 1
                           for role in ("claim", "ack", "listen")}, connections
    overview = scalar(rel_dsn, "SELECT server_connections FROM pgqueue.workers_overview "
                               "WHERE name = 'named'")
    assert overview == 3
