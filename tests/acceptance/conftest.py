from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.apps import core_app


@pytest.fixture
def ledger_dsn(dsn: str) -> Iterator[str]:
    """A fresh migrated database with the ledger table the test tasks write to."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(core_app.LEDGER_DDL)
    yield dsn
    core_app.close_ledger_pools()
