"""Database-per-tenant: settings, routing, failing closed, atomic blocks, provisioning, uvicorn.

Four database tenants live beside the 24 schema tenants: two on the main server and two on a
second PostgreSQL server. Their databases are dropped at the end of the module.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections, transaction
from django.test import override_settings

from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.context import TenantState
from omnitenant_async.engines.database_settings import (
    database_state,
    default_database_name,
    validate_database_name,
)
from omnitenant_async.engines.pools import pool_registry
from omnitenant_async.exceptions import (
    InvalidTenantName,
    NoTenantActive,
    TenantAlreadyExists,
    TenantProvisioningError,
    TenantSwitchInTransaction,
)
from omnitenant_async.isolation import IsolationType
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.provisioning.database import DatabaseTenantBackend
from omnitenant_async.routers import TenantRouter
from omnitenant_async.signals import tenant_created, tenant_deleted, tenant_migrated
from omnitenant_async.utils import get_tenant_model

from .conftest import TENANT_IDS, Server
from .database_helpers import (
    PgServer,
    database_exists,
    drop_databases_like,
    main_server,
    prefix,
    second_server,
)

DB_IDS = ["dba", "dbb", "dbc", "dbd"]  # dba, dbb on the main server; dbc, dbd on the second


def tenant_servers() -> dict[str, PgServer]:
    main, second = main_server(), second_server()
    return {"dba": main, "dbb": main, "dbc": second, "dbd": second}


@pytest.fixture(scope="module")
def db_tenants(tenants: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from demo.seed import create_database_tenant

    servers = tenant_servers()
    for server in set(servers.values()):
        drop_databases_like(server, prefix() + "db")  # leftovers of a crashed run

    def create(tenant_id: str) -> Any:
        try:
            database = servers[tenant_id].database_config(prefix() + tenant_id)
            return create_database_tenant(
                tenant_id, database=database, domains=[f"{tenant_id}.localhost"]
            )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        created = {t.tenant_id: t for t in pool.map(create, DB_IDS)}
    yield created
    for tenant_id, tenant in created.items():
        get_tenant_backend(tenant).delete(drop=True)
        assert not database_exists(servers[tenant_id], prefix() + tenant_id)


def current_database() -> tuple[str, int]:
    with connections["tenants"].cursor() as cursor:
        cursor.execute("SELECT current_database(), inet_server_port()")
        name, port = cursor.fetchone()
    return name, port


# -- settings ----------------------------------------------------------------------------------


def unsaved(tenant_id: str, database: dict[str, Any]) -> Any:
    return get_tenant_model()(
        tenant_id=tenant_id, isolation_type=IsolationType.DATABASE, config={"database": database}
    )


def test_connection_settings_come_from_config_with_master_defaults() -> None:
    master = settings.DATABASES["default"]
    state = database_state(unsaved("acme-co", {"HOST": "10.1.2.3", "PASSWORD": "s3cret"}))
    db = state.db_settings
    assert db is not None
    assert db["NAME"] == "tenant_acme_co"
    assert (db["HOST"], db["PORT"], db["USER"]) == ("10.1.2.3", master["PORT"], master["USER"])
    assert "pool" not in db["OPTIONS"]  # the master's pool options are per alias
    assert state.pool_key == f"{master['USER']}@10.1.2.3:{master['PORT']}/tenant_acme_co"
    assert "s3cret" not in repr(db) and "s3cret" not in repr(TenantState("x", db_settings=db))


def test_database_names_are_validated_and_long_ids_stay_unique() -> None:
    long_a, long_b = "a" * 60 + "-x1", "a" * 60 + "-x2"
    assert default_database_name(long_a) != default_database_name(long_b)
    assert len(default_database_name(long_a)) <= 63
    for bad in ['x"; DROP DATABASE postgres; --', "postgres", "template1", "-x", "", "a" * 64]:
        with pytest.raises(InvalidTenantName):
            validate_database_name(bad)
    with pytest.raises(InvalidTenantName):
        database_state(unsaved("evil", {"NAME": "a b"}))
    with pytest.raises(ImproperlyConfigured, match="unknown config"):
        database_state(unsaved("typo", {"HOTS": "x"}))


def test_router_migrates_database_tenants_in_their_own_database(
    db_tenants: dict[str, Any], tenants: dict[str, Any]
) -> None:
    router = TenantRouter()
    with tenant_context(db_tenants["dba"]):
        assert router.allow_migrate("tenants", "notes") is True
        assert router.allow_migrate("tenants", "auth") is True  # shared apps too
        assert router.allow_migrate("tenants", "customers") is False  # master app
        assert router.allow_migrate("default", "notes") is False
        assert router.allow_migrate("default", "auth") is False
    with tenant_context(None):
        assert router.allow_migrate("tenants", "auth") is False
    with tenant_context(tenants["t01"]):
        assert router.allow_migrate("tenants", "notes") is False
        assert router.allow_migrate("default", "notes") is True
    with use_master_db():
        assert router.allow_migrate("tenants", "notes") is False
        assert router.allow_migrate("default", "customers") is True


# -- queries -----------------------------------------------------------------------------------


def test_each_database_tenant_reads_its_own_database(
    db_tenants: dict[str, Any], tenants: dict[str, Any]
) -> None:
    from demo.notes.models import Marker

    aliases_before = dict(settings.DATABASES)
    servers = tenant_servers()
    for tenant_id in DB_IDS + DB_IDS[::-1] + ["t05", "dbc"]:
        tenant = db_tenants.get(tenant_id) or tenants[tenant_id]
        with tenant_context(tenant):
            assert Marker.objects.get().tenant_id == tenant_id
            if tenant_id in db_tenants:
                name, port = current_database()
                assert (name, str(port)) == (prefix() + tenant_id, servers[tenant_id].port)
    assert dict(settings.DATABASES) == aliases_before  # never mutated
    assert set(connections.settings) == set(aliases_before)
    connections.close_all()


def test_switching_tenant_gives_the_connection_back_to_its_pool(
    db_tenants: dict[str, Any],
) -> None:
    wrapper = connections["tenants"]
    with tenant_context(db_tenants["dba"]):
        current_database()
        first = wrapper.connection
    key_a = TenantState.from_tenant(db_tenants["dba"]).pool_key
    assert key_a is not None
    assert pool_registry.in_use()[key_a] == 1  # still held: nothing asked for another database
    with tenant_context(db_tenants["dbc"]):
        assert current_database()[0] == prefix() + "dbc"
        assert wrapper.connection is not first
    assert pool_registry.in_use()[key_a] == 0
    close_old_connections()  # no tenant now: Django's bookkeeping must still work
    wrapper.close()
    assert wrapper.connection is None
    assert all(n == 0 for n in pool_registry.in_use().values())


def test_no_database_tenant_fails_closed(
    db_tenants: dict[str, Any], tenants: dict[str, Any]
) -> None:
    from demo.notes.models import Marker

    with pytest.raises(NoTenantActive):
        Marker.objects.get()
    with pytest.raises(NoTenantActive):
        connections["tenants"].cursor()
    for state in (tenants["t01"], None):
        with tenant_context(state), pytest.raises(NoTenantActive):
            connections["tenants"].cursor()
    with use_master_db(), pytest.raises(NoTenantActive):
        connections["tenants"].cursor()
    # A connection still held from a tenant is not reused once the tenant is gone.
    with tenant_context(db_tenants["dbb"]):
        current_database()
    with pytest.raises(NoTenantActive):
        connections["tenants"].cursor()
    connections["tenants"].close()


def test_switch_inside_atomic_raises_and_keeps_the_transaction(
    db_tenants: dict[str, Any],
) -> None:
    from demo.notes.models import Note

    a, b = db_tenants["dba"], db_tenants["dbd"]
    with tenant_context(a), transaction.atomic(using="tenants"):
        Note.objects.create(text="atomic-a")
        with tenant_context(b), pytest.raises(TenantSwitchInTransaction, match="atomic"):
            Note.objects.count()
        Note.objects.create(text="atomic-a2")  # the transaction on a is intact
    with tenant_context(a):
        assert Note.objects.filter(text__startswith="atomic-a").count() == 2
    with tenant_context(b):
        assert not Note.objects.filter(text__startswith="atomic-a").exists()
    # Same with autocommit turned off by hand.
    with tenant_context(a):
        transaction.set_autocommit(False, using="tenants")
        try:
            Note.objects.count()
            with tenant_context(b), pytest.raises(TenantSwitchInTransaction):
                Note.objects.count()
        finally:
            transaction.rollback(using="tenants")
            transaction.set_autocommit(True, using="tenants")
    connections["tenants"].close()


@pytest.mark.asyncio
async def test_async_orm_interleaves_database_tenants(db_tenants: dict[str, Any]) -> None:
    """Outside ASGIHandler every a-method shares one thread and one wrapper, switching DBs."""
    from demo.notes.models import Marker

    async def read(tenant_id: str) -> str:
        async with tenant_context(db_tenants[tenant_id]):
            await asyncio.sleep(random.random() / 100)
            marker = await Marker.objects.aget()
            return marker.tenant_id

    order = DB_IDS * 10
    random.Random(4).shuffle(order)
    assert await asyncio.gather(*(read(t) for t in order)) == order


# -- provisioning ------------------------------------------------------------------------------


def test_create_migrate_delete_with_signals(db_tenants: dict[str, Any]) -> None:
    server = second_server()
    name = prefix() + "db-Mixed-Case"  # needs quoting: upper case and a hyphen
    events: list[tuple[str, str]] = []

    def record(kind: str) -> Any:
        def receiver(sender: Any, tenant: Any, **kwargs: Any) -> None:
            events.append((kind, tenant.tenant_id))

        return receiver

    signals = {tenant_created: "created", tenant_migrated: "migrated", tenant_deleted: "deleted"}
    receivers = {signal: record(kind) for signal, kind in signals.items()}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        tenant = unsaved("dbnew", server.database_config(name))
        backend = get_tenant_backend(tenant)
        assert isinstance(backend, DatabaseTenantBackend)
        backend.create(run_migrations=True)
        assert events == [("created", "dbnew"), ("migrated", "dbnew")]
        assert database_exists(server, name)
        with server.connect(name) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert {"notes_marker", "auth_user", "django_migrations"} <= tables
        assert not any(t.startswith("customers_") for t in tables)  # master apps stay out
        with tenant_context(tenant):
            assert current_database()[0] == name
        backend.delete()  # drop=False: the data stays
        assert database_exists(server, name)
        with use_master_db():
            assert not get_tenant_model().objects.filter(tenant_id="dbnew").exists()
        again = unsaved("dbnew", server.database_config(name))
        with pytest.raises(TenantAlreadyExists, match="already exists"):
            get_tenant_backend(again).create()
        get_tenant_backend(again).delete(drop=True)
        assert not database_exists(server, name)
        assert events[-2:] == [("deleted", "dbnew"), ("deleted", "dbnew")]
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
        connections.close_all()


@pytest.mark.asyncio
async def test_async_twins_create_and_drop(db_tenants: dict[str, Any]) -> None:
    from asgiref.sync import sync_to_async

    from demo.notes.models import Marker

    server = main_server()
    tenant = unsaved("dbasync", server.database_config(prefix() + "dbasync"))
    backend = get_tenant_backend(tenant)
    assert isinstance(backend, DatabaseTenantBackend)
    await backend.acreate()
    async with tenant_context(tenant):
        await Marker.objects.acreate(tenant_id="dbasync")
        assert (await Marker.objects.aget()).tenant_id == "dbasync"
    assert await sync_to_async(backend.exists)()
    await backend.adelete(drop=True)
    assert not await sync_to_async(backend.exists)()


def test_role_without_createdb_gets_a_clear_error(db_tenants: dict[str, Any]) -> None:
    server = second_server()
    role = prefix() + "norights"
    with server.connect() as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        tenant = unsaved("dbnorights", {**server.database_config(prefix() + "dbx"), "USER": role})
        with pytest.raises(TenantProvisioningError, match="CREATEDB"):
            get_tenant_backend(tenant).create()
        assert not database_exists(server, prefix() + "dbx")
    finally:
        with use_master_db():
            get_tenant_model().objects.filter(tenant_id="dbnorights").delete()
        with server.connect() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_template_database_is_cloned(db_tenants: dict[str, Any]) -> None:
    from demo.notes.models import Marker

    server = main_server()
    template = prefix() + "dbb"
    template_key = TenantState.from_tenant(db_tenants["dbb"]).pool_key
    assert template_key is not None
    pool_registry.close(template_key)  # no idle connections
    tenant = unsaved("dbclone", {**server.database_config(prefix() + "dbclone")})
    config = {**settings.OMNITENANT_CONFIG, "DATABASE_TEMPLATE": template}
    with override_settings(OMNITENANT_CONFIG=config):
        backend = get_tenant_backend(tenant)
        backend.create(run_migrations=False)
        try:
            with tenant_context(tenant):
                assert Marker.objects.get().tenant_id == "dbb"  # the template's row
        finally:
            backend.delete(drop=True)
            connections.close_all()


# -- through uvicorn ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_mixed_schema_and_database_tenants_under_concurrent_requests(
    db_tenants: dict[str, Any], live_server: Server
) -> None:
    ids = TENANT_IDS + DB_IDS * 4  # database tenants weigh about half of the requests
    rng = random.Random(7)
    paths = ["/whoami/", "/whoami-sync/", "/item/"]
    plan = [(rng.choice(ids), rng.choice(paths)) for _ in range(600)]
    limit = asyncio.Semaphore(48)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:

        async def call(tenant_id: str, path: str) -> None:
            async with limit:
                response = await client.get(path, headers={"host": f"{tenant_id}.localhost"})
            assert response.status_code == 200, (tenant_id, path, response.text)
            assert response.json()["marker"] == tenant_id, (tenant_id, path, response.text)

        async def post(tenant_id: str, i: int) -> None:
            async with limit:
                response = await client.post(
                    "/notes/", json={"text": f"mix-{tenant_id}-{i}"},
                    headers={"host": f"{tenant_id}.localhost"},
                )  # fmt: skip
            assert response.status_code == 201, response.text

        await asyncio.gather(
            *(call(t, p) for t, p in plan), *(post(t, i) for t in DB_IDS for i in range(10))
        )
        for tenant_id in DB_IDS:
            response = await client.get("/notes/", headers={"host": f"{tenant_id}.localhost"})
            texts = {n["text"] for n in response.json()["notes"] if n["text"].startswith("mix-")}
            assert texts == {f"mix-{tenant_id}-{i}" for i in range(10)}
    assert "Traceback" not in live_server.output()


def test_no_thread_leaks_pools_for_database_tenants(db_tenants: dict[str, Any]) -> None:
    """Each open pool runs two threads (scheduler + one worker); closed pools stop theirs."""
    pool_registry.close_all()
    before = {t.name for t in threading.enumerate() if t.name.startswith("ot:")}
    assert before == set()
    with tenant_context(db_tenants["dba"]):
        current_database()
    connections["tenants"].close()
    names = {t.name for t in threading.enumerate() if t.name.startswith("ot:")}
    assert len(names) == 2
    pool_registry.close_all()
    assert {t.name for t in threading.enumerate() if t.name.startswith("ot:")} == set()
