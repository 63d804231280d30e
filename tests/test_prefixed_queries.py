"""The statement that sets the path, sent in front of a query that has parameters.

- A schema name with ``%`` in it (``use_schema`` takes any identifier): psycopg read every
  ``%`` of the prefixed text as a placeholder, the schema name's included. The query must get
  its own parameters and the path its own schema, in every mode.
- psycopg's cache of parsed query texts (128): the prefixed text is one per tenant, so with
  more tenant x query pairs than that, every query used to be parsed again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import override_settings

from omnitenant_async import tenant_context, use_master_db, use_schema

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


def test_prefixed_queries_keep_psycopg_parse_cache(tenants: dict[str, Any]) -> None:
    """More tenant x query pairs than psycopg's 128 cached parses: the second pass must hit.

    Behind a transaction pooler every autocommit query carries its tenant's prefix; sent with
    the query's parameters, each pair was a text of its own, parsed anew on every pass once
    the pairs outnumber the cache. (Without a pooler only the first query after a switch is
    prefixed.)
    """
    from psycopg import _queries

    cache = _queries._query2pg_client
    queries = [f"SELECT tenant_id, %s + {i} FROM notes_marker WHERE id > %s" for i in range(7)]
    ordered = [tenants[t] for t in sorted(tenants)]
    assert len(ordered) * len(queries) > 128

    def one_pass() -> None:
        for tenant in ordered:
            with tenant_context(tenant), connection.cursor() as cursor:
                for i, query in enumerate(queries):
                    cursor.execute(query, [i, 0])
                    assert cursor.fetchall() == [(tenant.tenant_id, 2 * i)]

    config = {**settings.OMNITENANT_CONFIG, "POOLER": "transaction"}
    with override_settings(OMNITENANT_CONFIG=config):
        connections.close_all()
        one_pass()
        misses = cache.cache_info().misses
        one_pass()
        assert cache.cache_info().misses == misses
        connections.close_all()


@pytest.mark.parametrize(
    "path", [("t01", "public"), ("public",), (SCHEMA, "public"), ("it's", "x y", "public")]
)
def test_the_prefix_with_placeholders_renders_the_literal_one(path: tuple[str, ...]) -> None:
    """With parameters the path goes as the prefix's own parameters (one text for every
    tenant); psycopg must then send exactly the statement composed for the path."""
    from omnitenant_async.engines.postgresql import local_path

    prefix = local_path._prefix(path)
    positional, named = prefix.templates
    with use_master_db(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's ClientCursor
        assert raw.mogrify(positional + "SELECT %s", [*prefix.parameters, 7]) == (
            f"{prefix.literal}SELECT 7"
        )
        keyed = dict(zip(local_path._NAMED_KEYS, prefix.parameters, strict=False))
        assert raw.mogrify(named + "SELECT %(n)s", {**keyed, "n": 7}) == (
            f"{prefix.literal}SELECT 7"
        )
