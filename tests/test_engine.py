"""The schema engine on pooled connections: one regression test per leak of the mechanics
reference (§2.4 pooled session state, §3.3 rollback / savepoint rollback / error in a savepoint),
plus the conditional and piggybacked SET."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from demo.notes.models import Marker, Note
from omnitenant_async import schema_context, tenant_context, use_master_db
from omnitenant_async.engines.postgresql.base import DatabaseWrapper
from omnitenant_async.exceptions import InvalidTenantName, NoTenantActive

from .engine_wrapper import engine_wrapper

pytestmark = [pytest.mark.bug, pytest.mark.usefixtures("tenants")]


def server_conn() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )


@pytest.fixture
def single() -> Iterator[DatabaseWrapper]:
    """Our engine on a pool of exactly one physical connection, so every checkout reuses it."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    wrapper = DatabaseWrapper(settings_dict, alias="single_pool")
    yield wrapper
    wrapper.close()
    wrapper.close_pool()


@pytest.fixture
def set_counter() -> Iterator[Any]:
    """Counts the statements that set the search_path the *server* executed.

    The engine sets it with ``SELECT set_config('search_path', ...)`` (``paths.set_statement``),
    which pg_stat_statements normalises to ``SELECT set_config($1, $2, $3) ...``.
    """
    with server_conn() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")

        def count() -> int:
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                "WHERE query ILIKE 'SELECT set_config($1%%' AND dbid = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            return int(row[0]) if row else 0

        yield count


def marker_and_pid(wrapper: DatabaseWrapper) -> tuple[str, int]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT tenant_id, pg_backend_pid() FROM notes_marker")
        row = cursor.fetchone()
    return row[0], row[1]


def tenant(tenants: dict[str, Any], tenant_id: str) -> Any:
    return tenants[tenant_id]


def test_pooled_connection_reused_across_tenants_reads_each_own_rows(
    single: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    pids = set()
    for i in range(30):
        tenant_id = f"t{i % 7:02d}"
        with tenant_context(tenants[tenant_id]):
            marker, pid = marker_and_pid(single)
        single.close()  # back to the pool, session state intact
        assert marker == tenant_id
        pids.add(pid)
    assert len(pids) == 1  # really the same physical connection every time


def test_request_without_tenant_never_reads_previous_tenants_rows(
    single: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    """Mechanics E2b: the next pool user, with no tenant, landed on t_1's search_path."""
    with tenant_context(tenants["t01"]):
        assert marker_and_pid(single)[0] == "t01"
    single.close()
    with pytest.raises(DatabaseError, match="notes_marker"):
        marker_and_pid(single)  # public has no tenant tables: fails instead of leaking
    single.close()
    with pytest.raises(NoTenantActive):
        Marker.objects.count()


def test_conditional_set_only_when_path_changes(
    single: DatabaseWrapper, tenants: dict[str, Any], set_counter: Any
) -> None:
    with tenant_context(tenants["t02"]):
        marker_and_pid(single)
        single.close()
        base = set_counter()
        for _ in range(20):
            assert marker_and_pid(single)[0] == "t02"
            single.close()
        assert set_counter() == base  # same tenant, same physical connection: no SET at all
    with tenant_context(tenants["t03"]):
        assert marker_and_pid(single)[0] == "t03"
        assert marker_and_pid(single)[0] == "t03"
    assert set_counter() == base + 1


def test_set_is_piggybacked_in_one_message_counted_as_one_query(
    single: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    single.force_debug_cursor = True
    with tenant_context(tenants["t04"]):
        single.queries_log.clear()
        with single.cursor() as cursor:
            pending = single.connection._ot_pending
            cursor.execute("SELECT tenant_id FROM notes_marker")
            assert cursor.fetchone() == ("t04",)
        assert pending == ("t04", "public")
        assert single.connection._ot_search_path == ("t04", "public")
        # One message, one logged query (assertNumQueries is unchanged); its text shows the SET,
        # which checks that the tenant's schema exists.
        [logged] = [q["sql"] for q in single.queries_log]
        assert logged == (
            "SELECT set_config('search_path', '\"t04\", \"public\"', false) "
            "WHERE '\"t04\"'::regnamespace IS NOT NULL; SELECT tenant_id FROM notes_marker"
        )


def test_rollback_invalidates_the_record(single: DatabaseWrapper, tenants: dict[str, Any]) -> None:
    """Mechanics §3.3 rollback_demo: a SET inside a rolled-back transaction is undone."""
    with tenant_context(tenants["t01"]):
        marker_and_pid(single)
    # Our private wrapper is not in `connections`, so drive the transaction as atomic() does.
    single.set_autocommit(False)
    with tenant_context(tenants["t02"]):
        assert marker_and_pid(single)[0] == "t02"  # SET happened inside the transaction
    single.rollback()
    single.set_autocommit(True)
    with tenant_context(tenants["t02"]):
        assert marker_and_pid(single)[0] == "t02"
        with single.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert cursor.fetchone()[0].startswith('"t02"')


def test_atomic_rollback_with_orm(tenants: dict[str, Any]) -> None:
    with tenant_context(tenants["t01"]):
        assert Marker.objects.get().tenant_id == "t01"
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            with tenant_context(tenants["t05"]):
                assert Marker.objects.get().tenant_id == "t05"
                raise RuntimeError("rollback")
    with tenant_context(tenants["t05"]):
        assert Marker.objects.get().tenant_id == "t05"
    connection.close()


def test_savepoint_rollback_invalidates_the_record(tenants: dict[str, Any]) -> None:
    """Mechanics §3.3 savepoint_demo, and the invalidation-order trap."""
    with transaction.atomic():
        with tenant_context(tenants["t01"]):
            assert Marker.objects.get().tenant_id == "t01"
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                with tenant_context(tenants["t06"]):
                    assert Marker.objects.get().tenant_id == "t06"
                    raise RuntimeError("savepoint rollback")
        with tenant_context(tenants["t06"]):
            assert Marker.objects.get().tenant_id == "t06"
        with tenant_context(tenants["t01"]):
            assert Marker.objects.get().tenant_id == "t01"
    connection.close()


def test_db_error_in_savepoint_with_tenant_change_before_rollback(tenants: dict[str, Any]) -> None:
    """Mechanics dberror_demo: no SET while the transaction is aborted."""
    with transaction.atomic():
        with tenant_context(tenants["t07"]):
            Marker.objects.get()
            try:
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1/0")
            except DatabaseError:
                pass
        with tenant_context(tenants["t08"]):
            assert Marker.objects.get().tenant_id == "t08"
    with tenant_context(tenants["t07"]):
        assert Marker.objects.get().tenant_id == "t07"
    connection.close()


def test_connection_returned_in_transaction_is_forgotten(
    single: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t01"]):
        marker_and_pid(single)
    single.set_autocommit(False)
    with tenant_context(tenants["t09"]):
        marker_and_pid(single)
    raw = single.connection
    single.close()  # the pool rolls the open transaction back, undoing the SET
    assert raw._ot_search_path is None
    single.set_autocommit(True) if single.connection else None
    with tenant_context(tenants["t09"]):
        assert marker_and_pid(single)[0] == "t09"


def test_failed_piggybacked_statement_keeps_a_true_record(
    single: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    """Mechanics piggy_fail_demo: the failed message's SET is undone; do not record it."""
    with tenant_context(tenants["t01"]):
        marker_and_pid(single)
    with tenant_context(tenants["t10"]):
        with pytest.raises(DatabaseError):
            with single.cursor() as cursor:
                cursor.execute("SELECT no_such_column FROM notes_marker")
        assert single.connection._ot_search_path == ("t01", "public")
        assert marker_and_pid(single)[0] == "t10"


def test_executemany_first_and_percent_literals(tenants: dict[str, Any]) -> None:
    """Mechanics piggy_executemany_demo and the `%` literal cases."""
    connection.close()
    with tenant_context(tenants["t11"]):
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO notes_note (text, created_at) VALUES (%s, now())", [("a%",), ("b",)]
            )
            cursor.execute("SELECT count(*) FROM notes_note WHERE text LIKE 'a%'")
            assert cursor.fetchone() == (1,)
            cursor.execute("SELECT count(*) FROM notes_note WHERE text LIKE %s", ["a%%"])
            assert cursor.fetchone() == (1,)
        assert Note.objects.filter(text__startswith="a%").count() == 1
        Note.objects.all().delete()
    connection.close()
    with tenant_context(tenants["t12"]):
        assert Note.objects.count() == 0


def test_named_cursor_iterator_sees_the_tenant(tenants: dict[str, Any]) -> None:
    connection.close()
    with tenant_context(tenants["t13"]), transaction.atomic():
        Note.objects.bulk_create([Note(text=f"n{i}") for i in range(5)])
        texts = [n.text for n in Note.objects.order_by("id").iterator(chunk_size=2)]
        assert texts == [f"n{i}" for i in range(5)]
        transaction.set_rollback(True)


def test_identifiers_are_quoted(single: DatabaseWrapper) -> None:
    from omnitenant_async import use_schema

    with server_conn() as conn:
        conn.execute('CREATE SCHEMA IF NOT EXISTS "odd-name"')
        conn.execute('CREATE TABLE IF NOT EXISTS "odd-name".notes_marker (tenant_id text)')
        conn.execute("""INSERT INTO "odd-name".notes_marker VALUES ('odd')""")
    try:
        with use_schema("odd-name"):
            assert marker_and_pid(single)[0] == "odd"
    finally:
        with server_conn() as conn:
            conn.execute('DROP SCHEMA "odd-name" CASCADE')


def test_fail_closed_for_tenant_models_master_models_always_reachable(
    tenants: dict[str, Any],
) -> None:
    from omnitenant_async.utils import get_tenant_model

    with pytest.raises(NoTenantActive):
        list(Note.objects.all())
    with pytest.raises(NoTenantActive):
        Note.objects.create(text="nowhere")
    with use_master_db(), pytest.raises(NoTenantActive):
        Marker.objects.exists()
    with tenant_context(tenants["t14"]):
        assert get_tenant_model().objects.filter(tenant_id="t14").exists()
        assert get_tenant_model().objects.count() >= 24


def test_content_type_cache_is_per_tenant(tenants: dict[str, Any]) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    with tenant_context(tenants["t15"]):
        # Re-create this schema's row so its id differs from every other schema's.
        ContentType.objects.filter(app_label="notes", model="note").delete()
        ContentType.objects.clear_cache()
        ct_15 = ContentType.objects.get_for_model(Note)
    with tenant_context(tenants["t16"]):
        ct_16 = ContentType.objects.get_for_model(Note)
        assert ct_16.pk == ContentType.objects.get(app_label="notes", model="note").pk
    assert ct_15.pk != ct_16.pk
    with tenant_context(tenants["t15"]):
        assert ContentType.objects.get_for_model(Note).pk == ct_15.pk
        assert ContentType.objects.get_for_id(ct_15.pk).model == "note"


def test_connections_is_per_thread_and_pool_is_shared() -> None:
    assert engine_wrapper("default").pool is not None


def test_savepoint_rolled_back_in_the_same_tenant_that_set_the_path(
    tenants: dict[str, Any],
) -> None:
    """The trap: the SET came after the savepoint, and ROLLBACK TO SAVEPOINT runs with the record
    already matching the tenant, so no SET is sent - yet the server's path goes back."""
    with transaction.atomic():
        with tenant_context(tenants["t01"]):
            assert Marker.objects.get().tenant_id == "t01"
            sid = connection.savepoint()  # transaction.savepoint_create() is Django 6.1+
            assert sid is not None  # None only outside a transaction
        with tenant_context(tenants["t06"]):
            assert Marker.objects.get().tenant_id == "t06"  # SET t06 after the savepoint
            transaction.savepoint_rollback(sid)  # undoes that SET on the server
            assert Marker.objects.get().tenant_id == "t06"
    connection.close()


def test_no_set_while_the_transaction_is_aborted(tenants: dict[str, Any]) -> None:
    """Mechanics dberror_demo: the tenant differs from the record when the savepoint is rolled
    back after a DB error; a SET then would fail and poison the transaction."""
    with transaction.atomic():
        with tenant_context(tenants["t07"]):
            Marker.objects.get()
            sid = connection.savepoint()  # transaction.savepoint_create() is Django 6.1+
            assert sid is not None  # None only outside a transaction
            with pytest.raises(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT 1/0")
        with tenant_context(tenants["t08"]):
            transaction.savepoint_rollback(sid)
            assert Marker.objects.get().tenant_id == "t08"
    connection.close()


def test_server_side_binding_cursors_still_get_the_path(tenants: dict[str, Any]) -> None:
    """With OPTIONS['server_side_binding'] Django uses another cursor class: no piggyback, but
    the SET (and the schema check) still go first, on their own."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"]["server_side_binding"] = True
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    wrapper = DatabaseWrapper(settings_dict, alias="server_binding")
    try:
        for tenant_id in ("t01", "t02", "t01"):
            with tenant_context(tenants[tenant_id]):
                assert marker_and_pid(wrapper)[0] == tenant_id
            wrapper.close()
    finally:
        wrapper.close()
        wrapper.close_pool()


def test_schema_context_is_django_tenants_name_for_use_schema(tenants: dict[str, Any]) -> None:
    with schema_context("t03"):
        assert Marker.objects.get().tenant_id == "t03"
        with schema_context("t04", include_public=False):
            assert Marker.objects.get().tenant_id == "t04"
        assert Marker.objects.get().tenant_id == "t03"
    with pytest.raises(InvalidTenantName):
        schema_context("pg_catalog")


def test_pool_is_djangos_answer(single: DatabaseWrapper) -> None:
    """The engine's faster ``pool`` gives what Django's property gives, pool or not."""
    from django.db.backends.postgresql.base import DatabaseWrapper as Stock

    stock_pool = Stock.__dict__["pool"].fget
    assert single.pool is stock_pool(single) and single.pool is not None
    options = single.settings_dict["OPTIONS"]
    kept = options.pop("pool")
    try:  # the pool still exists, but the options no longer ask for one
        assert single.pool is None and stock_pool(single) is None
    finally:
        options["pool"] = kept
    assert single.pool is stock_pool(single)


def test_pool_while_a_connection_is_held_is_the_one_it_came_from(single: DatabaseWrapper) -> None:
    """While a pooled connection is held, ``pool`` is its pool without a lookup; once it is
    given back (or the pool closed), Django's answer again."""
    from django.db.backends.postgresql.base import DatabaseWrapper as Stock

    stock_pool = Stock.__dict__["pool"].fget
    single.ensure_connection()
    held = cast(Any, single.connection)._pool
    assert held is not None and single.pool is held is stock_pool(single)
    options = single.settings_dict["OPTIONS"]
    kept = options.pop("pool")
    try:  # the options changed under a held connection: it still goes back to its pool
        assert single.pool is held
        single.close()
        assert single.connection is None and held.closed is False
        assert single.pool is None and stock_pool(single) is None
    finally:
        options["pool"] = kept
    single.ensure_connection()
    assert single.pool is cast(Any, single.connection)._pool is stock_pool(single)
    single.close_pool()  # Django's: closes the alias's pool; the next read makes a new one
    assert single.pool is not held and single.pool is stock_pool(single)
    single.close()


def test_a_pooled_checkout_skips_only_connects_own_params(
    single: DatabaseWrapper, tenants: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """connect() on a pooled alias does not build connect kwargs it would not use; a
    ``connection_created`` receiver, and any other caller, still gets Django's."""
    from django.db.backends.postgresql.base import DatabaseWrapper as Stock
    from django.db.backends.signals import connection_created

    single.ensure_connection()  # the pool exists from here on
    single.close()
    built: list[dict[str, Any]] = []
    stock = Stock.get_connection_params

    def counting(self: Any) -> dict[str, Any]:
        built.append(params := stock(self))
        return params

    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, connection: Any, **kwargs: Any) -> None:
        if connection is single:
            seen.append(connection.get_connection_params())

    monkeypatch.setattr(Stock, "get_connection_params", counting)
    connection_created.connect(receiver)
    try:
        for tenant_id in ("t01", "t02"):
            with tenant_context(tenants[tenant_id]), single.cursor() as cursor:
                cursor.execute("SELECT tenant_id FROM notes_marker")
                assert cursor.fetchone() == (tenant_id,)
            single.close()
    finally:
        connection_created.disconnect(receiver)
    assert len(built) == 2 and built == seen  # the receivers' calls only, never connect()'s
    assert seen[0]["dbname"] == single.settings_dict["NAME"]
    assert single.get_connection_params()["dbname"] == single.settings_dict["NAME"]
