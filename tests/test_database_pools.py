"""Pools of database tenants: LRU eviction, the connection budget, the system check.

200 tenant databases on the second server, cloned from a migrated template (fast), each with
its own marker row. They are dropped at the end of the module.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core import checks
from django.db import OperationalError, connections
from django.test import override_settings

from omnitenant_async import tenant_context
from omnitenant_async.context import TenantState
from omnitenant_async.engines.budget import connection_budget
from omnitenant_async.engines.pools import pool_registry
from omnitenant_async.isolation import IsolationType
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.utils import get_domain_model, get_tenant_model

from .conftest import Server
from .database_helpers import (
    ConnectionSampler,
    PgServer,
    client_connections,
    clone_databases,
    drop_databases,
    drop_databases_like,
    prefix,
    second_server,
)

N_DATABASES = 200


def db_name(i: int) -> str:
    return f"{prefix()}pool_{i:03d}"


def tenant_id(i: int) -> str:
    return f"p{i:03d}"


@pytest.fixture(scope="module")
def server() -> PgServer:
    return second_server()


@pytest.fixture(scope="module")
def pool_tenants(tenants: dict[str, Any], server: PgServer) -> Iterator[list[Any]]:
    """200 saved database tenants ``p000``..``p199`` on ``pNNN.localhost``."""
    drop_databases_like(server, prefix() + "pool_")
    Tenant, Domain = get_tenant_model(), get_domain_model()
    template_name = prefix() + "pool_tpl"
    template = Tenant(tenant_id="pool-tpl", name="template", isolation_type=IsolationType.DATABASE)
    template.config = {"database": server.database_config(template_name)}
    backend = get_tenant_backend(template)
    backend.create(run_migrations=True)
    connections.close_all()
    pool_registry.close_all()  # no connection may stay open on a template
    backend.delete(drop=False)  # keep the database, not the tenant row
    names = [db_name(i) for i in range(N_DATABASES)]
    clone_databases(server, template_name, names)

    def mark(i: int) -> None:
        with server.connect(db_name(i)) as conn:
            conn.execute("INSERT INTO notes_marker (tenant_id) VALUES (%s)", [tenant_id(i)])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(mark, range(N_DATABASES)))
    created = Tenant.objects.bulk_create(
        Tenant(
            tenant_id=tenant_id(i), name=tenant_id(i), isolation_type=IsolationType.DATABASE,
            config={"database": server.database_config(db_name(i))},
        )
        for i in range(N_DATABASES)
    )  # fmt: skip
    Domain.objects.bulk_create(
        Domain(domain=f"{t.tenant_id}.localhost", tenant=t, is_primary=True) for t in created
    )
    yield created
    Tenant.objects.filter(tenant_id__in=[t.tenant_id for t in created]).delete()
    pool_registry.close_all()
    drop_databases(server, [*names, template_name], threads=16)


def in_thread_holding(
    tenant: Any, *, before_release: Callable[[], None] | None = None
) -> tuple[threading.Thread, threading.Event, threading.Event, list[str]]:
    """A thread that checks out ``tenant``'s connection and holds it until ``release`` is set."""
    from demo.notes.models import Marker

    holding, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def run() -> None:
        try:
            with tenant_context(tenant):
                seen.append(Marker.objects.get().tenant_id)
                holding.set()
                release.wait(10)
                seen.append(Marker.objects.get().tenant_id)  # still usable after evictions
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(10)
    return thread, holding, release, seen


def small_pools(**values: Any) -> Any:
    return override_settings(OMNITENANT_CONFIG={**settings.OMNITENANT_CONFIG, **values})


def read_marker(tenant: Any) -> str:
    from demo.notes.models import Marker

    with tenant_context(tenant):
        value = str(Marker.objects.get().tenant_id)
    connections["tenants"].close()  # back to the pool, as at the end of a request
    return value


def test_lru_evicts_idle_pools_never_one_with_a_checkout(
    pool_tenants: list[Any], server: PgServer
) -> None:
    a, b, c, d = pool_tenants[:4]
    keys = {t.tenant_id: TenantState.from_tenant(t).pool_key for t in (a, b, c, d)}
    pool_registry.close_all()
    evicted = pool_registry.evicted
    with small_pools(DATABASE_POOL_MAX_POOLS=2, DATABASE_POOL_SIZE=1):
        thread, _, release, seen = in_thread_holding(a)
        try:
            assert read_marker(b) == "p001"
            assert pool_registry.keys() == [keys["p000"], keys["p001"]]
            # a is the least recently used, but its connection is checked out: b goes.
            assert read_marker(c) == "p002"
            assert pool_registry.keys() == [keys["p000"], keys["p002"]]
            assert pool_registry.evicted == evicted + 1
            conns = client_connections(server, prefix() + "pool_")
            assert conns == {db_name(0): 1, db_name(2): 1}
        finally:
            release.set()
            thread.join()
        assert seen == ["p000", "p000"]
        # Now a is idle and least recently used: it is the one to go.
        assert read_marker(d) == "p003"
        assert pool_registry.keys() == [keys["p002"], keys["p003"]]
        assert client_connections(server, prefix() + "pool_") == {db_name(2): 1, db_name(3): 1}
    pool_registry.close_all()


def test_busy_pools_make_a_new_database_wait_then_time_out(pool_tenants: list[Any]) -> None:
    a, b = pool_tenants[10], pool_tenants[11]
    pool_registry.close_all()
    with small_pools(DATABASE_POOL_MAX_POOLS=1, DATABASE_POOL_TIMEOUT=0.5):
        thread, _, release, _ = in_thread_holding(a)
        try:
            start = time.monotonic()
            with pytest.raises(OperationalError, match="DATABASE_POOL_MAX_POOLS"):
                read_marker(b)
            assert time.monotonic() - start >= 0.45
            with small_pools(DATABASE_POOL_MAX_POOLS=1, DATABASE_POOL_TIMEOUT=10):
                threading.Timer(0.3, release.set).start()
                start = time.monotonic()
                assert read_marker(b) == "p011"  # waited for a's pool to become idle
                assert time.monotonic() - start >= 0.25
        finally:
            release.set()
            thread.join()
    pool_registry.close_all()


def test_budget_setting_and_system_check() -> None:
    budget = connection_budget()
    options = settings.DATABASES["default"]["OPTIONS"]
    assert isinstance(options, dict)  # typed object: demo.settings mixes value types
    master_max = options["pool"]["max_size"]
    assert budget.total == budget.max_pools * budget.pool_size + master_max

    def ids(**values: Any) -> set[str]:
        with small_pools(**values):
            return {m.id for m in checks.run_checks(databases=["default"]) if m.id}

    assert not {"omnitenant.W010", "omnitenant.E010"} & ids()
    assert "omnitenant.W010" in ids(DATABASE_POOL_MAX_POOLS=5000)
    assert "omnitenant.E010" in ids(TENANT_DB_ALIAS="elsewhere")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_200_tenant_databases_stay_within_the_connection_budget(
    pool_tenants: list[Any], server: PgServer
) -> None:
    """Budget 10 pools x 2: sampled server connections never exceed 20, every answer right."""
    budget = 20
    env = {"OMNITENANT_DB_MAX_POOLS": "10", "OMNITENANT_DB_POOL_SIZE": "2"}
    live = await asyncio.to_thread(Server, "demo.asgi:application", env)
    # Three requests per tenant in a row, 48 at a time: pools fill to their size of 2.
    order = [t.tenant_id for t in pool_tenants for _ in range(3)]
    limit = asyncio.Semaphore(48)
    try:
        with ConnectionSampler(server, prefix() + "pool_") as sampler:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:

                async def call(tid: str) -> None:
                    async with limit:
                        response = await client.get("/item/", headers={"host": f"{tid}.localhost"})
                    assert response.status_code == 200, (tid, response.text)
                    assert response.json() == {"marker": tid}

                await asyncio.gather(*(call(t) for t in order))
    finally:
        await asyncio.to_thread(live.stop)
    assert "Traceback" not in live.output()
    assert len(sampler.samples) > 50
    assert sampler.peak <= budget, sampler.peak
    assert sampler.peak >= budget // 2  # the budget was really used, so the test can fail
