"""The registry's found entries: an LRU of at most ``REGISTRY_MAX_ENTRIES``, safe across threads."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from omnitenant_async import checks
from omnitenant_async.context import TenantState
from omnitenant_async.registry import TenantRegistry, registry

from .conftest import TENANT_IDS

pytestmark = pytest.mark.usefixtures("tenants")


@contextmanager
def bound(n: Any) -> Iterator[None]:
    """REGISTRY_MAX_ENTRIES = n (the registry is cleared on entry and on exit)."""
    with override_settings(
        OMNITENANT_CONFIG={**settings.OMNITENANT_CONFIG, "REGISTRY_MAX_ENTRIES": n}
    ):
        yield


def cached_ids() -> set[str]:
    return {key[1].partition(".")[0] for key in registry._found}


def host(tenant_id: str) -> str:
    return f"{tenant_id}.localhost"


def test_never_holds_more_than_the_bound() -> None:
    with bound(5):
        for tenant_id in TENANT_IDS * 2:
            assert registry.get_by_domain(host(tenant_id)).tenant_id == tenant_id
            assert len(registry._found) <= 5
        assert len(registry._found) == 5


def test_the_least_recently_used_is_evicted_first() -> None:
    with bound(3):
        for tenant_id in ("t00", "t01", "t02"):
            registry.get_by_domain(host(tenant_id))
        registry.get_by_domain(host("t00"))  # a hit: t01 is now the least recently used
        registry.get_by_domain(host("t03"))
        assert cached_ids() == {"t00", "t02", "t03"}
        registry.get_by_domain(host("t02"))
        registry.get_by_domain(host("t04"))  # t00 was used before t02 and t03
        assert cached_ids() == {"t02", "t03", "t04"}


def test_an_evicted_tenant_is_loaded_again_correctly() -> None:
    with bound(2):
        first = registry.get_by_domain(host("t05"))
        registry.get_by_domain(host("t06"))
        registry.get_by_domain(host("t07"))  # evicts t05
        assert "t05" not in cached_ids()
        loads = registry.loads
        again = registry.get_by_domain(host("t05"))
        assert registry.loads == loads + 1
        assert again == first and again.tenant_id == again.schema_name == "t05"
        assert registry.get_by_domain(host("t05")) is again  # cached again: no further load
        assert registry.loads == loads + 1


def test_hits_do_not_query_nor_evict() -> None:
    ids = TENANT_IDS[:8]
    with bound(len(ids)):
        for tenant_id in ids:
            registry.get_by_domain(host(tenant_id))
        loads = registry.loads
        with CaptureQueriesContext(connection) as ctx:
            for tenant_id in random.Random(1).choices(ids, k=500):
                assert registry.get_by_domain(host(tenant_id)).tenant_id == tenant_id
        assert ctx.captured_queries == []
        assert registry.loads == loads
        assert cached_ids() == set(ids)


def test_concurrent_lookups_over_more_tenants_than_the_bound() -> None:
    """12 threads, 24 tenants, a bound of 6: every answer is the tenant asked for, while an
    invalidation clears the cache now and then.

    Fewer threads than the pool's 16 connections (this thread holds one): a thread waiting for
    a connection while holding a load lock would stall the threads that wait for that lock.
    """
    stop = threading.Event()

    def lookups(seed: int) -> int:
        rnd, checked = random.Random(seed), 0
        try:
            for _ in range(150):
                tenant_id = rnd.choice(TENANT_IDS)
                if rnd.random() < 0.5:
                    state = registry.get_by_domain(host(tenant_id))
                else:
                    state = registry.get_by_tenant_id(tenant_id)
                assert (state.tenant_id, state.schema_name) == (tenant_id, tenant_id)
                assert state.tenant is not None and state.tenant.tenant_id == tenant_id
                assert len(registry._found) <= 6
                checked += 1
        finally:
            connections.close_all()
        return checked

    def invalidate() -> None:
        while not stop.wait(0.05):
            registry.clear()

    with bound(6):
        loads = registry.loads
        clearer = threading.Thread(target=invalidate)
        clearer.start()
        try:
            with ThreadPoolExecutor(max_workers=12) as pool:
                assert sum(pool.map(lookups, range(24))) == 24 * 150
        finally:
            stop.set()
            clearer.join()
        assert registry.loads - loads > 6  # entries were evicted and loaded again
        assert len(registry._found) <= 6


def test_lock_free_hits_race_inserts_and_evictions() -> None:
    """No database: 8 threads hit while 2 insert far past the bound; a hit always returns the
    state stored for its own key, and the dict is never broken."""
    reg = TenantRegistry()
    states = {("tenant_id", f"k{i}"): TenantState(f"k{i}", schema_name=f"k{i}") for i in range(400)}
    keys = list(states)
    errors: list[BaseException] = []
    stop = threading.Event()

    def hit(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                key = rnd.choice(keys)
                state = reg._cached(key)
                assert state is None or state is states[key], (key, state)
        except BaseException as err:  # reported below
            errors.append(err)

    def insert(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(20_000):
                key = rnd.choice(keys)
                reg._store(key, states[key], reg._generation)
                assert len(reg._found) <= 50
        except BaseException as err:
            errors.append(err)

    with bound(50):
        hitters = [threading.Thread(target=hit, args=(i,)) for i in range(8)]
        inserters = [threading.Thread(target=insert, args=(100 + i,)) for i in range(2)]
        for t in hitters + inserters:
            t.start()
        for t in inserters:
            t.join()
        stop.set()
        for t in hitters:
            t.join()
        assert errors == []
        assert 0 < len(reg._found) <= 50


@pytest.mark.asyncio
async def test_async_lookups_with_a_bound() -> None:
    """Concurrent ``aget`` on the event loop over more tenants than the bound."""
    with bound(4):
        wanted = random.Random(2).choices(TENANT_IDS, k=120)
        states = await asyncio.gather(*(registry.aget_by_domain(host(t)) for t in wanted))
        assert [s.tenant_id for s in states] == wanted
        assert len(registry._found) <= 4


@pytest.mark.parametrize("value", [0, -1, "100", 1.5, True, None])
def test_check_reports_a_bad_bound(value: Any) -> None:
    with bound(value):
        assert {m.id for m in checks.check_registry()} == {"omnitenant.E050"}


def test_check_accepts_a_good_bound() -> None:
    assert checks.check_registry() == []
    with bound(1):
        assert checks.check_registry() == []
