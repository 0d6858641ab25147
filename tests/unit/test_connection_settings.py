"""The pooler and listen-DSN settings, and the application_name every connection carries."""

from __future__ import annotations

import pytest

import pgqueue
from pgqueue.db import prepare_threshold_for, resolve_pooler, worker_application_name
from pgqueue.errors import ConfigurationError
from pgqueue.worker.notifications import listen_conninfo


def test_worker_connections_are_named_by_worker_and_role() -> None:
    assert worker_application_name("emails-1", "claim") == "pgqueue worker emails-1 claim"


def test_a_long_worker_name_keeps_its_tail_and_the_role_within_63_bytes() -> None:
    name = "orders-consumer-7d9f8b6c5-x2k4p.eu-west-1.compute.internal-123456"
    named = worker_application_name(name, "listen")
    assert len(named.encode()) == 63
    assert named.startswith("pgqueue worker ~")
    assert named.endswith("internal-123456 listen")


def test_non_ascii_becomes_question_marks_counted_before_the_server_does() -> None:
    assert worker_application_name("wörker", "ack") == "pgqueue worker w?rker ack"


def test_no_prepared_statements_behind_a_transaction_pooler() -> None:
    assert prepare_threshold_for("transaction", 1) is None
    assert prepare_threshold_for("none", 1) == 1


def test_pooler_comes_from_the_argument_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGQUEUE_POOLER", raising=False)
    assert resolve_pooler(None) == "none"
    monkeypatch.setenv("PGQUEUE_POOLER", "transaction")
    assert resolve_pooler(None) == "transaction"
    assert resolve_pooler("none") == "none"


def test_an_unknown_pooler_is_refused_naming_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match=r"^pooler must be one of none, transaction, "
                                                 r"not 'statement'$"):
        pgqueue.App("dbname=x", pooler="statement")  # type: ignore[arg-type]
    monkeypatch.setenv("PGQUEUE_POOLER", "session")
    with pytest.raises(ConfigurationError, match=r"not 'session' \(PGQUEUE_POOLER\)$"):
        pgqueue.App("dbname=x").pooler  # noqa: B018


def test_changing_the_pooler_reopens_the_pools() -> None:
    app = pgqueue.App("dbname=x")
    assert app.db.pooler == "none"
    app.pooler = "transaction"
    assert app.db.pooler == "transaction"


@pytest.mark.parametrize(("pooler", "listen_dsn", "expected"), [
    ("none", None, "dbname=pooled"),
    ("none", "dbname=direct", "dbname=direct"),
    ("transaction", "dbname=direct", "dbname=direct"),
    ("transaction", None, None),
])
def test_the_worker_listens_on_a_direct_session_or_nowhere(
    monkeypatch: pytest.MonkeyPatch, pooler: str, listen_dsn: str | None,
    expected: str | None,
) -> None:
    monkeypatch.delenv("PGQUEUE_LISTEN_DSN", raising=False)
    app = pgqueue.App("dbname=pooled", pooler=pooler,  # type: ignore[arg-type]
                      listen_dsn=listen_dsn)
    assert listen_conninfo(app) == expected


def test_the_listen_dsn_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_LISTEN_DSN", "dbname=direct")
    assert listen_conninfo(pgqueue.App("dbname=pooled", pooler="transaction")) == "dbname=direct"
