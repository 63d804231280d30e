"""``POOLER = "transaction"``: every transaction carries its own ``SET LOCAL search_path``.

Run here against the server directly, which is stricter than a pooler: the tests read the
*session's* search_path with a raw protocol call after each step and require it to be the
server's default - nothing may rely on (or leave) session state. tests/test_pooler.py runs
the same mode behind a real PgBouncer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.engines.postgresql.base import DatabaseWrapper
from omnitenant_async.engines.postgresql.local_path import TransactionPoolerUnsupported
from omnitenant_async.engines.postgresql.pooler import behind_pooler

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.fixture
def tx_mode() -> Iterator[DatabaseWrapper]:
    """Our engine, POOLER = 'transaction', on a fresh one-connection pool."""
    config = {**settings.OMNITENANT_CONFIG, "POOLER": "transaction"}
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    with override_settings(OMNITENANT_CONFIG=config):
        wrapper = DatabaseWrapper(settings_dict, alias="tx_mode")
        yield wrapper
        wrapper.close()
        wrapper.close_pool()


@pytest.fixture
def registered(tx_mode: DatabaseWrapper) -> Iterator[None]:
    """``transaction.atomic(using=...)`` finds the wrapper in ``connections``."""
    from django.db import connections

    connections[tx_mode.alias] = tx_mode
    yield
    del connections[tx_mode.alias]


def session_path(wrapper: DatabaseWrapper) -> str:
    """The session's search_path, read beside the engine (no SET can ride along)."""
    result = wrapper.connection.pgconn.exec_(b"SHOW search_path")
    return bytes(result.get_value(0, 0) or b"").decode()


def markers(wrapper: DatabaseWrapper, n: int = 1) -> list[str]:
    with wrapper.cursor() as cursor:
        seen = []
        for _ in range(n):
            cursor.execute("SELECT tenant_id FROM notes_marker")
            seen.append(cursor.fetchone()[0])
        return seen


def test_autocommit_statements_each_carry_the_path_and_leave_no_session_state(
    tx_mode: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    for tenant_id in ("t01", "t02", "t01", "t03"):
        with tenant_context(tenants[tenant_id]):
            assert markers(tx_mode, 3) == [tenant_id] * 3  # one cursor, several statements
        assert session_path(tx_mode) == '"$user", public'
    with use_master_db(), pytest.raises(DatabaseError, match="notes_marker"):
        markers(tx_mode)


@pytest.mark.usefixtures("registered")
def test_atomic_blocks_savepoints_and_rollbacks(
    tx_mode: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t04"]):
        with transaction.atomic(using=tx_mode.alias):
            assert markers(tx_mode, 2) == ["t04", "t04"]
            try:
                with transaction.atomic(using=tx_mode.alias):
                    assert markers(tx_mode) == ["t04"]
                    raise RuntimeError("roll the savepoint back")
            except RuntimeError:
                pass
            assert markers(tx_mode) == ["t04"]  # the SET LOCAL predates the savepoint
        assert session_path(tx_mode) == '"$user", public'
        try:
            with transaction.atomic(using=tx_mode.alias):
                markers(tx_mode)
                raise RuntimeError("roll it all back")
        except RuntimeError:
            pass
        assert markers(tx_mode) == ["t04"]
    with tenant_context(tenants["t05"]):
        with transaction.atomic(using=tx_mode.alias):
            assert markers(tx_mode) == ["t05"]  # a new transaction: a new SET LOCAL


def test_executemany_lands_in_the_tenant_in_autocommit_and_in_a_transaction(
    tx_mode: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t06"]):
        with tx_mode.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO notes_note (text, created_at) VALUES (%s, now())",
                [("tx-many-a",), ("tx-many-b",)],
            )
            cursor.execute("SELECT count(*) FROM notes_note WHERE text LIKE 'tx-many-%%'")
            assert cursor.fetchone()[0] == 2
            cursor.execute("DELETE FROM notes_note WHERE text LIKE 'tx-many-%%'")
    assert session_path(tx_mode) == '"$user", public'
    with tenant_context(tenants["t07"]), tx_mode.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM notes_note WHERE text LIKE 'tx-many-%%'")
        assert cursor.fetchone()[0] == 0


def test_statements_refusing_a_transaction_block_are_refused_for_a_tenant(
    tx_mode: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t08"]), pytest.raises(TransactionPoolerUnsupported):
        with tx_mode.cursor() as cursor:
            cursor.execute("VACUUM notes_marker")
    with use_master_db(), tx_mode.cursor() as cursor:
        cursor.execute("VACUUM customers_tenant")  # public: the server's own path


def test_a_direct_connection_is_not_a_pooler(tenants: dict[str, Any]) -> None:
    with use_master_db(), connection.cursor():
        assert behind_pooler(connection.connection) is False
