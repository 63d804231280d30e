"""A schema name with ``%`` in it (``use_schema`` takes any identifier).

The statement that sets the path travels in front of the query; with parameters, psycopg
reads every ``%`` of that text as a placeholder, the schema name's included. Each mode must
escape it: the query gets its own parameters and the path its own schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import override_settings

from omnitenant_async import use_master_db, use_schema

pytestmark = pytest.mark.usefixtures("django_db")

SCHEMA = "pct%s_%(x)s"


@pytest.fixture
def odd_schema() -> Iterator[str]:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{SCHEMA.replace("%", "%%")}"', [])
        cursor.execute(f'CREATE TABLE "{SCHEMA.replace("%", "%%")}".odd (n integer)', [])
        cursor.execute(f'INSERT INTO "{SCHEMA.replace("%", "%%")}".odd VALUES (41)', [])
    yield SCHEMA
    connections.close_all()
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{SCHEMA.replace("%", "%%")}" CASCADE', [])


@pytest.mark.parametrize(
    ("pooler", "piggyback"), [(None, True), (None, False), ("transaction", True)]
)
@pytest.mark.parametrize("atomic", [False, True])
def test_queries_with_parameters_in_a_schema_named_with_percent(
    odd_schema: str, pooler: str | None, piggyback: bool, atomic: bool
) -> None:
    config = {**settings.OMNITENANT_CONFIG, "POOLER": pooler, "PIGGYBACK_SEARCH_PATH": piggyback}
    block = transaction.atomic if atomic else contextlib.nullcontext
    with override_settings(OMNITENANT_CONFIG=config):
        connections.close_all()
        with use_schema(odd_schema), block(), connection.cursor() as cursor:
            cursor.execute("SELECT n + %s, current_schema() FROM odd WHERE n > %s", [1, 0])
            assert cursor.fetchall() == [(42, odd_schema)]
            cursor.execute("SELECT count(*) FROM odd WHERE n = %(n)s", {"n": 41})
            assert cursor.fetchall() == [(1,)]
            cursor.execute("SELECT current_schema()")  # no parameters: nothing to escape
            assert cursor.fetchall() == [(odd_schema,)]
            cursor.executemany("INSERT INTO odd VALUES (%s)", [(1,), (2,)])
            cursor.execute("SELECT sum(n) FROM odd WHERE n < %s", [41])
            assert cursor.fetchall() == [(3,)]
            cursor.execute("DELETE FROM odd WHERE n < %s", [41])
        connections.close_all()
