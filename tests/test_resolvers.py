"""Resolvers and the cached registry, against the real tenant and domain tables."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from omnitenant_async import use_master_db
from omnitenant_async.exceptions import DomainNotFound, InvalidTenantInput, TenantNotFound
from omnitenant_async.models import BaseTenant
from omnitenant_async.registry import registry
from omnitenant_async.resolvers import (
    CustomDomainTenantResolver,
    HeaderTenantResolver,
    PathTenantResolver,
    QueryParamTenantResolver,
    RequestInfo,
    SubdomainTenantResolver,
    parse_host,
)

from .engine_wrapper import engine_wrapper

pytestmark = pytest.mark.usefixtures("tenants")

HOSTILE_HOSTS = [
    "",
    "evil.com/../etc",
    "a..b",
    "-a.localhost",
    "a-.localhost",
    "x" * 300,
    "t01.localhost:99999",
    "t01.localhost:abc",
    "t01.localhost:",
    "t01.localhost\x00",
    "ümlaut.localhost",
    "t01.localhost@evil.com",
    "t01_x.localhost",
    "t01.localhost:80:80",
    "[::1",
    "[::1]x",
    "a b",
    "%74%30%31.localhost",
]


@pytest.mark.parametrize("raw", HOSTILE_HOSTS)
def test_parse_host_refuses_malformed(raw: str) -> None:
    with pytest.raises(InvalidTenantInput):
        parse_host(raw)


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("T01.LOCALHOST", "t01.localhost"),
        ("t01.localhost.", "t01.localhost"),
        ("t01.localhost:8000", "t01.localhost"),
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
    ],
)
def test_parse_host_normalises(raw: str, host: str) -> None:
    assert parse_host(raw) == host


def info(host: str = "localhost", path: str = "/", **headers: str) -> RequestInfo:
    return RequestInfo(
        host=host, path=path, headers={k.lower().replace("_", "-"): v for k, v in headers.items()}
    )


def test_custom_domain_resolver() -> None:
    resolver = CustomDomainTenantResolver()
    assert resolver.resolve(info("t03.localhost:8000")).tenant_id == "t03"
    assert resolver.resolve(info("localhost")).is_public
    with pytest.raises(DomainNotFound):
        resolver.resolve(info("nobody.localhost"))
    with pytest.raises(TenantNotFound):
        resolver.resolve(info("t03.example.com"))


def test_several_domains_per_tenant() -> None:
    from omnitenant_async.utils import get_domain_model, get_tenant_model

    with use_master_db():
        tenant = get_tenant_model().objects.get(tenant_id="t04")
        get_domain_model().objects.create(domain="alias-of-t04.example.org", tenant=tenant)
    try:
        resolver = CustomDomainTenantResolver()
        assert resolver.resolve(info("alias-of-t04.example.org")).tenant_id == "t04"
        assert resolver.resolve(info("t04.localhost")).tenant_id == "t04"
    finally:
        with use_master_db():
            get_domain_model().objects.filter(domain="alias-of-t04.example.org").delete()


def test_subdomain_resolver() -> None:
    resolver = SubdomainTenantResolver()
    assert resolver.resolve(info("t05.localhost:8000")).tenant_id == "t05"
    assert resolver.resolve(info("www.t05.localhost")).tenant_id == "t05"
    assert resolver.resolve(info("localhost")).is_public
    assert resolver.resolve(info("www.localhost")).is_public
    for host in ("t05.evil.com", "a.t05.localhost", "nobody.localhost", "t05.localhost.evil.com"):
        with pytest.raises(TenantNotFound):
            resolver.resolve(info(host))


def test_header_resolver() -> None:
    resolver = HeaderTenantResolver()
    assert resolver.resolve(info("api.example.com", X_Tenant_ID="t06")).tenant_id == "t06"
    assert resolver.resolve(info("localhost")).is_public
    assert resolver.vary_on == ("X-Tenant-ID",)
    with pytest.raises(TenantNotFound):
        resolver.resolve(info("api.example.com", X_Tenant_ID="nobody"))
    with pytest.raises(TenantNotFound):
        resolver.resolve(info("api.example.com", X_Tenant_ID="public"))
    for bad in ("T06", "t06;drop", "../t06", "", "x" * 64):
        with pytest.raises(InvalidTenantInput):
            resolver.resolve(info("api.example.com", X_Tenant_ID=bad))
    with pytest.raises(InvalidTenantInput):
        resolver.resolve(info("api.example.com"))


def test_path_resolver() -> None:
    resolver = PathTenantResolver()
    request = info("app.example.com", "/t/t07/whoami/")
    assert resolver.resolve(request).tenant_id == "t07"
    assert resolver.path_prefix(request) == "/t/t07"
    assert resolver.resolve(info("app.example.com", "/about/")).is_public
    with pytest.raises(InvalidTenantInput):
        resolver.resolve(info("app.example.com", "/t/BAD!/"))
    with pytest.raises(TenantNotFound):
        resolver.resolve(info("app.example.com", "/t/nobody/"))


def test_query_param_resolver() -> None:
    resolver = QueryParamTenantResolver()
    request = RequestInfo(host="ws.example.com", query_string="a=1&tenant=t08")
    assert resolver.resolve(request).tenant_id == "t08"
    with pytest.raises(InvalidTenantInput):
        resolver.resolve(RequestInfo(host="ws.example.com", query_string="tenant=%00"))


def test_from_scope_and_from_request_agree() -> None:
    from django.test import RequestFactory

    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/t/t01/ws/",
        "query_string": b"tenant=t01",
        "headers": [(b"host", b"T01.localhost:8000"), (b"x-tenant-id", b"t01")],
    }
    a = RequestInfo.from_scope(scope)
    b = RequestInfo.from_request(
        RequestFactory().get(
            "/t/t01/ws/?tenant=t01", HTTP_HOST="T01.localhost:8000", HTTP_X_TENANT_ID="t01"
        )
    )
    for resolver in (CustomDomainTenantResolver(), HeaderTenantResolver(), PathTenantResolver()):
        assert resolver.resolve(a) == resolver.resolve(b)
        assert resolver.resolve(a).tenant_id == "t01"


def test_warm_lookup_makes_no_query() -> None:
    registry.clear()
    with CaptureQueriesContext(connection) as cold:
        assert registry.get_by_domain("t09.localhost").tenant_id == "t09"
    assert len(cold.captured_queries) == 1
    with CaptureQueriesContext(connection) as warm:
        for _ in range(50):
            assert registry.get_by_domain("t09.localhost").tenant_id == "t09"
    assert warm.captured_queries == []


def test_unknown_hosts_are_negatively_cached_and_bounded() -> None:
    registry.clear()
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(3):
            with pytest.raises(DomainNotFound):
                registry.get_by_domain("ghost.localhost")
    assert len(ctx.captured_queries) == 1
    for i in range(1100):
        registry._store(("domain", f"g{i}.localhost"), None, registry._generation)
    assert len(registry._missing) <= 1024


def test_cache_invalidated_on_tenant_and_domain_save_and_delete() -> None:
    from omnitenant_async.utils import get_domain_model, get_tenant_model

    Domain = get_domain_model()
    with use_master_db():
        tenant = get_tenant_model().objects.get(tenant_id="t10")
    cached = registry.get_by_domain("t10.localhost").tenant
    assert isinstance(cached, BaseTenant) and cached.name == tenant.name
    with use_master_db():
        tenant.name = "Renamed T10"
        tenant.save()
    cached = registry.get_by_domain("t10.localhost").tenant
    assert isinstance(cached, BaseTenant) and cached.name == "Renamed T10"

    with use_master_db():
        Domain.objects.create(domain="late.localhost", tenant=tenant)
    assert registry.get_by_domain("late.localhost").tenant_id == "t10"
    with use_master_db():
        Domain.objects.filter(domain="late.localhost").get().delete()
    with pytest.raises(DomainNotFound):
        registry.get_by_domain("late.localhost")


@pytest.mark.asyncio
async def test_async_lookup_uses_the_cache() -> None:
    await sync_to_async(registry.clear)()
    loads = registry.loads
    for _ in range(20):
        assert (await registry.aget_by_domain("t11.localhost")).tenant_id == "t11"
        assert (await registry.aget_by_tenant_id("t11")).tenant_id == "t11"
    assert registry.loads - loads == 2


def test_concurrent_misses_of_one_key_make_one_query() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def lookup(_: int) -> str | None:
        try:
            return registry.get_by_domain("t19.localhost").tenant_id
        finally:
            connections.close_all()

    registry.clear()
    loads = registry.loads
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lookup, range(32))) == {"t19"}
    assert registry.loads - loads == 1


def test_a_follower_holding_a_connection_is_not_stalled_by_the_leader() -> None:
    """The first miss of a key waits for a pooled connection that every thread holds; the
    other threads, missing the same or another key, still answer (at most LOAD_WAIT later)
    with the connections they hold, instead of waiting for the pool's timeout."""
    import queue
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from omnitenant_async.registry import LOAD_WAIT

    pool = engine_wrapper("default").pool
    assert pool is not None
    connections.close_all()  # this thread's connection back: the followers take them all
    stats = pool.get_stats()  # others may still be held (asgiref's thread keeps its own)
    holders = pool.max_size - (stats.get("pool_size", 0) - stats.get("pool_available", 0))
    holding = threading.Barrier(holders + 1)
    release = threading.Event()
    answers: queue.Queue[tuple[str, str | None, float]] = queue.Queue()

    def hold_then_resolve(host: str) -> None:
        try:
            with use_master_db():
                connections["default"].ensure_connection()  # this thread's pooled connection
            holding.wait(20)

            while ("domain", "t12.localhost") not in registry._loading:
                time.sleep(0.005)  # the leader is in: it now waits for a connection
            start = time.monotonic()
            state = registry.get_by_domain(host)
            answers.put((host, state.tenant_id, time.monotonic() - start))
            release.wait(30)
        finally:
            connections.close_all()

    def leader() -> str | None:
        try:
            return registry.get_by_domain("t12.localhost").tenant_id
        finally:
            connections.close_all()

    registry.clear()
    hosts = ["t12.localhost", "t13.localhost"] * holders
    with ThreadPoolExecutor(max_workers=holders + 1) as executor:
        followers = [executor.submit(hold_then_resolve, hosts[i]) for i in range(holders)]
        try:
            holding.wait(20)  # every pooled connection is held now
            first = executor.submit(leader)
            for _ in range(holders):
                host, tenant_id, took = answers.get(timeout=LOAD_WAIT + 5)
                assert tenant_id == host.split(".")[0]
                assert took < LOAD_WAIT + 3, f"{host} waited {took:.1f} s for the leader"
        finally:
            release.set()
        assert first.result(timeout=30) == "t12"
        for future in followers:
            future.result(timeout=30)


def test_query_param_given_twice_with_different_values_is_refused() -> None:
    resolver = QueryParamTenantResolver()
    same = RequestInfo(host="ws.example.com", query_string="tenant=t08&tenant=t08")
    assert resolver.resolve(same).tenant_id == "t08"
    with pytest.raises(InvalidTenantInput):
        resolver.resolve(RequestInfo(host="ws.example.com", query_string="tenant=t08&tenant=t09"))


def test_cached_answers_only_what_the_registry_holds() -> None:
    """The middleware's no-coroutine path: a hit, public, a known unknown; ``None`` to load."""
    registry.clear()
    resolver = CustomDomainTenantResolver()
    loads = registry.loads
    assert resolver.cached(info("t12.localhost")) is None  # cold: aresolve() must load it
    assert registry.loads == loads  # cached() made no query
    loaded = resolver.resolve(info("t12.localhost"))
    assert resolver.cached(info("t12.localhost:8000")) is loaded
    public = resolver.cached(info("localhost"))
    assert public is not None and public.is_public
    with pytest.raises(DomainNotFound):
        resolver.resolve(info("nobody-cached.localhost"))
    with pytest.raises(DomainNotFound):  # negatively cached: raised, never a query
        resolver.cached(info("nobody-cached.localhost"))
    with pytest.raises(InvalidTenantInput):
        resolver.cached(info("a..b"))


def test_cached_leaves_a_resolver_with_its_own_lookup_alone() -> None:
    class Own(CustomDomainTenantResolver):
        async def aresolve(self, request: RequestInfo) -> Any:
            raise AssertionError("not called by cached()")

    resolver = CustomDomainTenantResolver()
    warm = resolver.resolve(info("t12.localhost"))
    assert resolver.cached(info("t12.localhost")) is warm
    assert Own().cached(info("t12.localhost")) is None


def test_peek_never_queries() -> None:
    registry.clear()
    loads = registry.loads
    with CaptureQueriesContext(connection) as ctx:
        assert registry.peek("domain", "t13.localhost") is None
        assert registry.peek("tenant_id", "t13") is None
    assert ctx.captured_queries == [] and registry.loads == loads
    registry.get_by_tenant_id("t13")
    peeked = registry.peek("tenant_id", "t13")
    assert peeked is not None and peeked.tenant_id == "t13"
