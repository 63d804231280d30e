"""Statements that refuse a transaction block never receive a piggybacked ``SET``.

``SET ...; <query>`` in one message is an implicit transaction block, which ``CREATE DATABASE``,
``VACUUM``, ``... CONCURRENTLY`` and friends refuse. A SET is pending on a fresh pooled
connection, after a rollback and after a tenant switch: each statement is run in each of those
situations, through Django's cursor and through the raw psycopg connection.
"""

from __future__ import annotations

import copy
import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import connection, migrations
from django.db.migrations.loader import MigrationLoader
from django.db.models import Index

from omnitenant_async import tenant_context
from omnitenant_async.engines.postgresql.base import DatabaseWrapper
from omnitenant_async.engines.postgresql.search_path import can_piggyback

from .conftest import ROOT
from .engine_wrapper import engine_wrapper

pytestmark = [pytest.mark.bug, pytest.mark.usefixtures("tenants")]


@pytest.fixture
def single() -> Iterator[DatabaseWrapper]:
    """Our engine on a fresh pool of one physical connection."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    wrapper = DatabaseWrapper(settings_dict, alias="statements_pool")
    yield wrapper
    wrapper.close()
    wrapper.close_pool()


def marker(wrapper: DatabaseWrapper) -> str:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT tenant_id FROM notes_marker")
        return str(cursor.fetchone()[0])


def make_pending(wrapper: DatabaseWrapper, situation: str, tenants: dict[str, Any]) -> None:
    """Leave a ``SET search_path`` pending on the connection, for tenant t01."""
    if situation == "fresh":
        wrapper.close()
        wrapper.close_pool()  # the next checkout opens a new physical connection
    elif situation == "rollback":
        with tenant_context(tenants["t01"]):
            assert marker(wrapper) == "t01"
            wrapper.set_autocommit(False)
            marker(wrapper)
            wrapper.rollback()
            wrapper.set_autocommit(True)
    elif situation == "switch":
        with tenant_context(tenants["t02"]):
            assert marker(wrapper) == "t02"
    with tenant_context(tenants["t01"]):
        wrapper.cursor().close()  # _cursor() leaves the SET pending for the next query
    assert wrapper.connection._ot_pending is not None, "the test needs a pending SET"


def run(wrapper: DatabaseWrapper, via: str, statement: str) -> None:
    if via == "django":
        with wrapper.cursor() as cursor:
            cursor.execute(statement)
    else:
        wrapper.connection.execute(statement)


def tablespace_dir() -> str:
    """An empty directory the server's OS user owns (it runs as ``postgres`` when we are root)."""
    path = tempfile.mkdtemp(prefix="ot-tblspc-")
    if os.geteuid() == 0:
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            return path
        os.chown(path, pg.pw_uid, pg.pw_gid)
    return path


# (statement to test, statements that undo it) - each needs its own message.
STATEMENTS: list[tuple[str, Callable[[], str], list[str]]] = [
    ("create database", lambda: "CREATE DATABASE ot_stmt_db", ["DROP DATABASE ot_stmt_db"]),
    ("vacuum", lambda: "VACUUM notes_marker", []),
    ("vacuum analyze", lambda: "vacuum (analyze) notes_marker", []),
    (
        "create index concurrently",
        lambda: "CREATE INDEX CONCURRENTLY ot_stmt_idx ON notes_marker (tenant_id)",
        ["DROP INDEX ot_stmt_idx"],
    ),
    ("alter system", lambda: "ALTER SYSTEM RESET work_mem", []),
    (
        "create tablespace",
        lambda: f"CREATE TABLESPACE ot_stmt_ts LOCATION '{tablespace_dir()}'",
        ["DROP TABLESPACE ot_stmt_ts"],
    ),
    ("comment first", lambda: "/* leading comment */ VACUUM notes_marker", []),
]

# Statements that need something to exist first: (setup, statement).
PREPARED: list[tuple[str, list[str], str]] = [
    ("drop database", ["CREATE DATABASE ot_stmt_db"], "DROP DATABASE ot_stmt_db"),
    (
        "drop index concurrently",
        ["CREATE INDEX ot_stmt_idx ON notes_marker (tenant_id)"],
        "DROP INDEX CONCURRENTLY ot_stmt_idx",
    ),
    (
        "reindex concurrently",
        ["CREATE INDEX ot_stmt_idx ON notes_marker (tenant_id)"],
        "REINDEX INDEX CONCURRENTLY ot_stmt_idx",
    ),
]

SITUATIONS = ["fresh", "rollback", "switch"]
VIAS = ["django", "raw"]


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("name,statement,undo", STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_statement_runs_with_a_set_pending(
    single: DatabaseWrapper,
    tenants: dict[str, Any],
    name: str,
    statement: Callable[[], str],
    undo: list[str],
    situation: str,
    via: str,
) -> None:
    make_pending(single, situation, tenants)
    with tenant_context(tenants["t01"]):
        try:
            run(single, via, statement())
            assert marker(single) == "t01"  # and the tenant's path is in force afterwards
        finally:
            for cleanup in undo:
                with single.cursor() as cursor:
                    cursor.execute(cleanup)


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("name,setup,statement", PREPARED, ids=[p[0] for p in PREPARED])
def test_prepared_statement_runs_with_a_set_pending(
    single: DatabaseWrapper,
    tenants: dict[str, Any],
    name: str,
    setup: list[str],
    statement: str,
    situation: str,
    via: str,
) -> None:
    with tenant_context(tenants["t01"]), single.cursor() as cursor:
        for step in setup:
            cursor.execute(step)
    make_pending(single, situation, tenants)
    with tenant_context(tenants["t01"]):
        try:
            run(single, via, statement)
            assert marker(single) == "t01"
        finally:
            with single.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS ot_stmt_idx")
                cursor.execute("DROP DATABASE IF EXISTS ot_stmt_db")


def test_a_set_still_rides_along_with_select_and_dml() -> None:
    for query in (
        "SELECT 1",
        " select 1",
        "(SELECT 1) UNION (SELECT 2)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "INSERT INTO t VALUES (1)",
        "update t set a = 1",
        "DELETE FROM t",
        "VALUES (1)",
    ):
        assert can_piggyback(query), query
    for refused in (
        "VACUUM",
        "CREATE DATABASE x",
        "SELECTX",
        "-- c\nSELECT 1",
        "SET x = 1",
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "ALTER SYSTEM RESET ALL",
        b"SELECT 1",
    ):
        assert not can_piggyback(refused), refused


class AddNoteIndexConcurrently(migrations.Migration):
    atomic = False
    operations = [
        AddIndexConcurrently("note", Index(fields=["created_at"], name="ot_stmt_note_created")),
    ]


@pytest.mark.parametrize("situation", SITUATIONS)
def test_non_atomic_migration_with_add_index_concurrently_per_tenant(
    tenants: dict[str, Any], situation: str
) -> None:
    """Django's ``AddIndexConcurrently`` in a non-atomic migration, for several tenants in turn."""
    state = MigrationLoader(None).project_state(("notes", "0001_initial"))
    migration = AddNoteIndexConcurrently("0099_concurrent_index", "notes")
    for tenant_id in ("t05", "t06", "t07"):
        make_pending(engine_wrapper(), situation, tenants)
        with tenant_context(tenants[tenant_id]):
            try:
                with connection.schema_editor(atomic=False) as editor:
                    migration.apply(state.clone(), editor)
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
                        "ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relname = 'ot_stmt_note_created' AND n.nspname = %s",
                        [tenant_id],
                    )
                    assert cursor.fetchall() == [(True,)]
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX IF EXISTS ot_stmt_note_created")
                connection.close()


def test_manage_py_test_parallel_on_our_engine() -> None:
    """Django's runner clones the test database per worker (CREATE DATABASE ... TEMPLATE)."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.parallel_project.settings")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "test",
            "tests.parallel_project",
            "--pattern",
            "cases.py",
            "--parallel",
            "2",
            "--noinput",
            "-v",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Cloning test database" in output, output
    assert "Ran 2 tests" in output and "OK" in output, output
    clones = {line.split("=", 1)[1] for line in output.splitlines() if line.startswith("database=")}
    assert clones and all(name.startswith("ot_parallel_project_") for name in clones), output
