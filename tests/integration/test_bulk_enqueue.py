"""defer_many's COPY path: rows streamed in chunks, all or nothing, ids in the order written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import pgqueue
from pgqueue.errors import InvalidArguments, PayloadTooLarge
from pgqueue.tasks import COPY_CHUNK
from tests.apps import core_app
from tests.helpers import scalar

LATE = 30_000
"""An item this far in is encoded long after the first chunks reached the server."""


def _rows(dsn: str) -> list[tuple[int, list[object], dict[str, object]]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, args, kwargs FROM pgqueue.jobs ORDER BY id").fetchall()


def _with_bad_item_at(position: int, bad: object) -> list[object]:
    items: list[object] = [(n, n) for n in range(LATE + 1000)]
    items[position] = bad
    return items


@pytest.mark.parametrize(("bad", "error"), [
    ((1, {2}), InvalidArguments),  # not JSON
    ((1,), InvalidArguments),  # does not fit the signature
    ("12", InvalidArguments),  # not a tuple, list or dict
    ((1, "x" * 2_000_000), PayloadTooLarge),
])
def test_a_bad_item_late_in_the_stream_raises_typed_and_enqueues_nothing(
    app: pgqueue.App, dsn: str, bad: object, error: type[Exception]
) -> None:
    assert LATE > 4 * COPY_CHUNK  # several chunks were sent before the bad one was encoded
    with pytest.raises(error):
        core_app.add.defer_many(_with_bad_item_at(LATE, bad))
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    core_app.add.defer_many([(1, 2)] * 600)  # the pool's connection is usable afterwards
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 600


def test_a_bad_item_late_in_the_stream_fails_the_callers_transaction(
    app: pgqueue.App, dsn: str
) -> None:
    with psycopg.connect(dsn) as conn:
        core_app.add.defer(1, 2, connection=conn)
        with pytest.raises(InvalidArguments):
            core_app.add.defer_many(_with_bad_item_at(LATE, (1, {2})), connection=conn)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")  # nothing of this transaction can commit
        conn.rollback()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_a_bad_item_in_the_first_chunk_fails_before_any_sql(app: pgqueue.App, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        core_app.add.defer(1, 2, connection=conn)
        with pytest.raises(InvalidArguments):
            core_app.add.defer_many(_with_bad_item_at(COPY_CHUNK - 1, (1, {2})), connection=conn)
        conn.commit()  # the transaction is intact: the COPY never started
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
    assert scalar(dsn, "SELECT last_value FROM pgqueue.jobs_id_seq") == 1  # no ids reserved


def test_ids_returned_are_the_rows_written_in_order(app: pgqueue.App, dsn: str) -> None:
    count = 3 * COPY_CHUNK + 7  # a last chunk shorter than the others
    ids = core_app.add.defer_many((n, -n) for n in range(count))  # any iterable, even lazy
    rows = _rows(dsn)
    assert ids == [row[0] for row in rows]
    assert [row[1] for row in rows] == [[n, -n] for n in range(count)]


def test_ids_are_right_when_the_reserved_ids_are_not_consecutive(
    app: pgqueue.App, dsn: str
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:  # as if other sessions took ids between
        conn.execute("ALTER SEQUENCE pgqueue.jobs_id_seq INCREMENT BY 3")
    ids = core_app.add.defer_many([(n, n) for n in range(1000)] + [{"a": 1, "b": 2}])
    rows = _rows(dsn)
    assert ids == [row[0] for row in rows] and ids[1] - ids[0] == 3
    assert rows[-1][1:] == ([], {"a": 1, "b": 2}) and rows[999][1] == [999, 999]


def test_jobs_due_now_run_at_the_enqueue_time(app: pgqueue.App, dsn: str) -> None:
    count = 2 * COPY_CHUNK + 1
    core_app.add.defer_many([(n, n) for n in range(count)])
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE run_at = enqueued_at") == count


def test_an_explicit_run_at_is_kept_by_the_copy_path(app: pgqueue.App, dsn: str) -> None:
    run_at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    ids = core_app.add.using(run_at=run_at).defer_many([(n, n) for n in range(COPY_CHUNK + 1)])
    assert {app.get_job(ids[0]).run_at, app.get_job(ids[-1]).run_at} == {run_at}
    delayed = core_app.add.using(delay=timedelta(hours=1)).defer_many([(1, 2)] * 600)
    job = app.get_job(delayed[-1])
    assert timedelta(minutes=59) < job.run_at - job.enqueued_at < timedelta(minutes=61)
