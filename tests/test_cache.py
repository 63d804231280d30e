"""Tenant-scoped cache keys, on Django's LocMemCache and on a real Redis (OMNITENANT_REDIS_URL)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.cache import make_key
from omnitenant_async.context import TenantState
from omnitenant_async.logging import TenantLogFilter

ACME, BETA = TenantState("acme", schema_name="acme"), TenantState("beta", schema_name="beta")
KEY_FUNCTION = "omnitenant_async.cache.make_key"


@pytest.fixture(params=["locmem", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[BaseCache]:
    # A fresh KEY_PREFIX per test: the Redis may be shared, and clear() would flush it all.
    params = {"KEY_FUNCTION": KEY_FUNCTION, "KEY_PREFIX": f"ot-{uuid.uuid4().hex[:8]}"}
    if request.param == "locmem":
        yield LocMemCache(f"ot-test-{uuid.uuid4()}", params)
        return
    url = os.environ.get("OMNITENANT_REDIS_URL")
    if not url:
        pytest.skip("OMNITENANT_REDIS_URL not set: scripts/test starts a throwaway Redis")
    from django.core.cache.backends.redis import RedisCache

    redis_cache = RedisCache(url, params)
    yield redis_cache
    client = redis_cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{params['KEY_PREFIX']}:*"))
    if keys:
        client.delete(*keys)
    redis_cache.close()


def raw_keys(cache: BaseCache) -> list[str]:
    if isinstance(cache, LocMemCache):
        return list(cache._cache)  # type: ignore[attr-defined]  # the backend's private store
    client = cache._cache.get_client()  # type: ignore[attr-defined]  # the backend's private store
    return [k.decode() for k in client.scan_iter(match=f"{cache.key_prefix}:*")]


def fill(cache: BaseCache, tag: str) -> None:
    """Every writing method, positional and keyword."""
    cache.set("a", f"{tag}-a")
    cache.set(key="b", value=f"{tag}-b", timeout=60)
    assert cache.add("c", f"{tag}-c")
    assert cache.add(key="d", value=f"{tag}-d")
    cache.set_many({"m1": f"{tag}-m1", "m2": f"{tag}-m2"})
    cache.set_many(data={"m3": f"{tag}-m3"}, timeout=60)
    cache.set("n", 10)
    assert cache.get_or_set("g", f"{tag}-g") == f"{tag}-g"
    assert cache.get_or_set(key="h", default=lambda: f"{tag}-h") == f"{tag}-h"
    cache.set("gone", 1)
    assert cache.delete("gone")
    cache.set_many({"x1": 1, "x2": 2})
    cache.delete_many(["x1"])
    cache.delete_many(keys=["x2"])


def check(cache: BaseCache, tag: str, n: int) -> None:
    """Every reading method, positional and keyword, sees this tenant's values only."""
    assert cache.get("a") == f"{tag}-a"
    assert cache.get(key="b") == f"{tag}-b"
    assert cache.get("c", default=None) == f"{tag}-c"
    assert cache.get_many(["a", "m1", "missing"]) == {"a": f"{tag}-a", "m1": f"{tag}-m1"}
    assert cache.get_many(keys=["m2", "m3"]) == {"m2": f"{tag}-m2", "m3": f"{tag}-m3"}
    assert cache.has_key("d") and cache.has_key(key="g") and not cache.has_key("gone")
    assert cache.get_or_set("h", "other") == f"{tag}-h"
    assert not cache.add("a", "other")
    assert cache.touch("a", 60) and cache.touch(key="b", timeout=60)
    assert not cache.touch("x1")
    assert cache.get("n") == n


def test_every_method_is_scoped_to_the_tenant(cache: BaseCache) -> None:
    with tenant_context(ACME):
        fill(cache, "acme")
    with tenant_context(BETA):
        assert cache.get("a") is None and not cache.has_key("c")
        assert cache.get_many(["a", "m1", "m3"]) == {}
        assert not cache.touch("a")
        assert not cache.delete("b")  # acme's b is not reachable, so not deleted
        fill(cache, "beta")
        assert cache.incr("n") == 11 and cache.incr(key="n", delta=5) == 16
    with tenant_context(ACME):
        assert cache.decr("n") == 9 and cache.decr(key="n", delta=2) == 7
        check(cache, "acme", 7)
    with tenant_context(BETA):
        check(cache, "beta", 16)
    keys = raw_keys(cache)
    assert len(keys) >= 20
    for key in keys:
        assert ":t.acme:" in key or ":t.beta:" in key, key


def test_versions_are_scoped_too(cache: BaseCache) -> None:
    with tenant_context(ACME):
        cache.set("v", "acme-1", version=1)
        assert cache.incr_version("v") == 2
        assert cache.get("v", version=2) == "acme-1"
    with tenant_context(BETA):
        assert cache.get("v", version=2) is None
        cache.set("k:t.acme:secret", "beta")
        # A crafted version cannot rebuild another tenant's key.
        assert cache.get("secret", version="None:t.beta:k") is None  # type: ignore[arg-type]  # a crafted str
    with tenant_context(ACME):
        cache.set("secret", "acme-secret")
    with tenant_context(BETA):
        assert cache.get("secret", version="1:t.acme") is None  # type: ignore[arg-type]  # a crafted str


def test_no_tenant_and_public_share_a_separate_namespace(cache: BaseCache) -> None:
    cache.set("config", "public")
    with use_master_db():
        assert cache.get("config") == "public"
    with tenant_context(ACME):
        assert cache.get("config") is None
        cache.set("config", "acme")
    assert cache.get("config") == "public"
    assert any(":public:config" in k for k in raw_keys(cache))
    assert make_key("k", "p", 3) == "p:3:public:k"


@pytest.mark.asyncio
async def test_async_api_is_scoped_under_interleaved_tasks(cache: BaseCache) -> None:
    async def tenant_work(state: TenantState, rounds: int) -> None:
        tag = state.tenant_id
        async with tenant_context(state):
            for i in range(rounds):
                await cache.aset("counter", i)
                await cache.aset(key="name", value=tag)
                await cache.aset_many({"m": f"{tag}-{i}"})
                await asyncio.sleep(random.random() / 500)
                assert await cache.aget("name") == tag
                assert await cache.aget(key="counter") == i
                assert await cache.aget_many(["m", "name"]) == {"m": f"{tag}-{i}", "name": tag}
                assert await cache.aincr("counter") == i + 1
                assert await cache.adecr(key="counter", delta=1) == i
                assert await cache.ahas_key("m")
                assert await cache.aget_or_set("once", tag) == tag
                assert not await cache.aadd("name", "other")
                assert await cache.atouch("name", 60)
            await cache.adelete_many(["m"])
            assert await cache.aget("m") is None
            assert await cache.adelete("name")

    states = [TenantState(f"t{i}", schema_name=f"t{i}") for i in range(3)]
    states += [TenantState(f"d{i}", pool_key=f"u@h:5432/d{i}") for i in range(3)]
    await asyncio.gather(*(tenant_work(s, 8) for s in states))
    for state in states:
        async with tenant_context(state):
            assert await cache.aget("once") == state.tenant_id
            assert await cache.aget("counter") == 7


def test_log_records_carry_the_tenant(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("omnitenant_test.cache")
    tenant_filter = TenantLogFilter()
    logger.addFilter(tenant_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("outside")
            with tenant_context(ACME):
                logger.info("inside")
    finally:
        logger.removeFilter(tenant_filter)
    # TenantLogFilter sets record.tenant_id, which LogRecord does not declare.
    assert [(r.getMessage(), r.tenant_id) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("outside", "-"),
        ("inside", "acme"),
    ]
