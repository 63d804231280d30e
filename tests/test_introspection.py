"""The schema engine lists tables without Django's per-row visibility check, same answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from omnitenant_async import schema_context, tenant_context, use_master_db
from omnitenant_async.engines.postgresql import introspection

pytestmark = pytest.mark.usefixtures("tenants")

# Django's own query (postgresql/introspection.py), run for comparison.
DJANGOS = """
    SELECT c.relname,
        CASE WHEN c.relispartition THEN 'p' WHEN c.relkind IN ('m', 'v') THEN 'v' ELSE 't' END,
        obj_description(c.oid, 'pg_class')
    FROM pg_catalog.pg_class c
    LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v')
        AND n.nspname NOT IN ('pg_catalog', 'pg_toast')
        AND pg_catalog.pg_table_is_visible(c.oid)
"""


def both() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        ours = [tuple(t) for t in connection.introspection.get_table_list(cursor)]
        cursor.execute(DJANGOS)
        djangos = [tuple(row) for row in cursor.fetchall()]
    return sorted(ours), sorted(djangos)


@pytest.fixture
def shadowing() -> Iterator[None]:
    """A table in t03 named like a public one, a view, a comment; and a temporary table."""
    with schema_context("t03"), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t03.customers_tenant (x int)")
        cursor.execute("CREATE VIEW t03.ot_view AS SELECT 1 AS one")
        cursor.execute("COMMENT ON VIEW t03.ot_view IS 'a view'")
    yield
    with schema_context("t03"), connection.cursor() as cursor:
        cursor.execute("DROP VIEW t03.ot_view")
        cursor.execute("DROP TABLE t03.customers_tenant")


def test_same_tables_as_django_in_every_state(tenants: dict[str, Any], shadowing: None) -> None:
    activations: list[Callable[[], tenant_context]] = [
        lambda: tenant_context(tenants["t03"]),
        lambda: tenant_context(tenants["t04"]),
        use_master_db,
        lambda: schema_context("t03", include_public=False),
    ]
    for activate in activations:
        with activate():
            ours, djangos = both()
            assert ours == djangos
            assert ours, "no tables listed at all"
    with tenant_context(tenants["t03"]):
        ours, _ = both()
        assert ("ot_view", "v", "a view") in ours
        assert [name for name, *_ in ours].count("customers_tenant") == 1


def test_temporary_tables_are_listed_first_like_django(tenants: dict[str, Any]) -> None:
    with tenant_context(tenants["t05"]), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE ot_notes_note_tmp (x int)")
        try:
            ours, djangos = both()
            assert ours == djangos
            assert "ot_notes_note_tmp" in connection.introspection.table_names()
        finally:
            cursor.execute("DROP TABLE ot_notes_note_tmp")


def test_the_engine_uses_it() -> None:
    assert isinstance(connection.introspection, introspection.DatabaseIntrospection)
