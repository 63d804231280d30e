"""Cached lookup of tenants by domain and by id, so a warm request makes no query.

Entries expire after ``REGISTRY_TTL`` seconds, a backstop: the whole cache is dropped when a
tenant or domain row is saved or deleted in this process, and, through PostgreSQL's
``NOTIFY``, in every other process (``omnitenant_async.invalidation``).
A lookup that fails (database unreachable) caches nothing: it is neither "found" nor "unknown",
so an outage is never remembered as a flood of unknown tenants.
Found keys are kept in an LRU of at most ``REGISTRY_MAX_ENTRIES``; unknown keys are remembered
briefly, in a bounded LRU, so a flood of bogus hosts costs one query per host per
``REGISTRY_NEGATIVE_TTL`` at most. Expiry is jittered and concurrent misses of one
key wait for a single query, so entries do not all reload in one burst.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import OrderedDict
from typing import Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import get_config
from .context import PUBLIC, TenantState, use_public_schema
from .exceptions import DomainNotFound, TenantNotFound


def get_tenant_model() -> Any:
    """The concrete tenant model named by ``OMNITENANT_CONFIG['TENANT_MODEL']``."""
    return apps.get_model(get_config().TENANT_MODEL, require_ready=False)


def get_domain_model() -> Any:
    """The concrete domain model named by ``OMNITENANT_CONFIG['DOMAIN_MODEL']``."""
    return apps.get_model(get_config().DOMAIN_MODEL, require_ready=False)


class _Entry:
    """A found state, its expiry and its last use (``time.monotonic()``), written by hits."""

    __slots__ = ("expires", "state", "used")

    def __init__(self, state: TenantState, expires: float, used: float) -> None:
        self.state = state
        self.expires = expires
        self.used = used


def _last_use(item: tuple[tuple[str, str], _Entry]) -> float:
    return item[1].used


#: Seconds a miss waits for another thread's query of the same key before querying itself.
LOAD_WAIT = 1.0


class TenantRegistry:
    """Thread-safe: hits take no lock; every change of the dicts is made under ``_lock``.

    A hit (every request makes one) is a ``dict.get`` and one attribute store on the entry it
    got, the time of use. It never changes the dict, so it cannot break an insert, eviction or
    clear made under the lock, with the GIL or in free-threaded builds (whose dicts lock
    themselves per operation). Eviction, under the lock, drops the entries used longest ago.
    Two races remain, both harmless: a hit may stamp an entry just evicted, or eviction may
    read a stamp a moment old and drop an entry being used; either costs one more load, never
    a wrong tenant (a hit returns the state stored under its own key). ``move_to_end`` on an
    ``OrderedDict`` per hit would change the shared dict: under the lock every request would
    contend for it; without, it would rely on each C call being atomic, which only the GIL
    provides.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], _Entry] = {}
        self._missing: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._generation = 0
        # Misses being loaded now: the followers of one key wait for its leader's query.
        self._loading: dict[tuple[str, str], threading.Event] = {}
        self.loads = 0  # database lookups made; read by tests and benchmarks

    def clear(self) -> None:
        with self._lock:
            self._found.clear()
            self._missing.clear()
            self._generation += 1

    def _cached(self, key: tuple[str, str]) -> TenantState | None:
        """The cached state, or ``None`` on a miss; raise when the key is known to be unknown."""
        now = time.monotonic()
        hit = self._found.get(key)
        if hit is not None and hit.expires > now:
            hit.used = now  # no lock: see the class docstring
            return hit.state
        expires = self._missing.get(key)
        if expires is not None and expires > now:
            raise DomainNotFound(key[1]) if key[0] == "domain" else TenantNotFound(*key)
        return None

    def _store(self, key: tuple[str, str], state: TenantState | None, generation: int) -> None:
        config = get_config()
        with self._lock:
            if generation != self._generation:  # invalidated while we were loading
                return
            if state is not None:
                ttl = config.REGISTRY_TTL * random.uniform(0.8, 1.0)
                now = time.monotonic()
                # Room first, then the insert: the dict never holds more than the bound, not
                # even for a moment (lock-free readers may count it).
                if key not in self._found and len(self._found) >= config.REGISTRY_MAX_ENTRIES:
                    self._evict(config.REGISTRY_MAX_ENTRIES)
                self._found[key] = _Entry(state, now + ttl, now)
                self._missing.pop(key, None)
                return
            self._missing[key] = time.monotonic() + config.REGISTRY_NEGATIVE_TTL
            self._missing.move_to_end(key)
            while len(self._missing) > config.REGISTRY_MAX_NEGATIVE:
                self._missing.popitem(last=False)

    def _evict(self, bound: int) -> None:
        """Make room for one entry by dropping the least recently used (under the lock).

        A sixteenth of the bound goes at once: one O(n log k) pass per k inserts instead of a
        scan of every entry for each insert at the bound.
        """
        count = max(len(self._found) - bound + 1, bound // 16)
        for key, _ in heapq.nsmallest(count, self._found.items(), key=_last_use):
            del self._found[key]

    def _load(self, key: tuple[str, str]) -> TenantState:
        """One query per missing key: concurrent misses of the key wait for the first one's.

        A follower waits at most ``LOAD_WAIT`` seconds, then queries itself: the leader may be
        waiting for a pooled connection that the follower's own request holds, and a lock
        held across that wait would stall both until the pool times out. Misses of other keys
        never wait for each other.
        """
        with self._lock:
            loading = self._loading.get(key)
            if loading is None:
                self._loading[key] = threading.Event()
        if loading is not None:
            loading.wait(LOAD_WAIT)
            return self._cached(key) or self._query(key)
        try:
            return self._cached(key) or self._query(key)
        finally:
            with self._lock:
                done = self._loading.pop(key)
            done.set()

    def _query(self, key: tuple[str, str]) -> TenantState:
        generation = self._generation
        self.loads += 1
        kind, value = key
        with use_public_schema():
            if kind == "domain":
                row = (
                    get_domain_model().objects.select_related("tenant").filter(domain=value).first()
                )
                tenant = row.tenant if row is not None else None
            else:
                tenant = get_tenant_model().objects.filter(tenant_id=value).first()
        state = TenantState.from_tenant(tenant) if tenant is not None else None
        self._store(key, state, generation)
        if state is None:
            raise DomainNotFound(value) if kind == "domain" else TenantNotFound(kind, value)
        return state

    def tenant_exists(self, tenant_id: str) -> bool:
        """Whether the tenant row exists *now* (a query, never the cache).

        For error paths: a request resolved just before its tenant was deleted finds out here
        whether its failure means "gone" (404) rather than a bug (500).
        """
        with use_public_schema():
            return bool(get_tenant_model().objects.filter(tenant_id=tenant_id).exists())

    def get(self, kind: str, value: str) -> TenantState:
        key = (kind, value)
        return self._cached(key) or self._load(key)

    async def aget(self, kind: str, value: str) -> TenantState:
        key = (kind, value)
        return self._cached(key) or await sync_to_async(self._load)(key)

    def get_by_domain(self, host: str) -> TenantState:
        """The state for a host; the public state for ``PUBLIC_HOST``. Raises ``DomainNotFound``."""
        if host in get_config().PUBLIC_HOST:
            return PUBLIC
        return self.get("domain", host)

    async def aget_by_domain(self, host: str) -> TenantState:
        if host in get_config().PUBLIC_HOST:
            return PUBLIC
        key = ("domain", host)  # aget() inlined: one coroutine less on every request
        return self._cached(key) or await sync_to_async(self._load)(key)

    def peek(self, kind: str, value: str) -> TenantState | None:
        """The cached state, or ``None`` if a lookup is needed: never a query, never a wait.

        For an async caller that can skip a coroutine when the tenant is warm (``peek`` first,
        then ``await aget(...)`` on ``None``). Raises like :meth:`get` for a key known to be
        unknown; ``PUBLIC_HOST`` is the public state.
        """
        if kind == "domain" and value in get_config().PUBLIC_HOST:
            return PUBLIC
        return self._cached((kind, value))

    def get_by_tenant_id(self, tenant_id: str) -> TenantState:
        return self.get("tenant_id", tenant_id)

    async def aget_by_tenant_id(self, tenant_id: str) -> TenantState:
        return await self.aget("tenant_id", tenant_id)


registry = TenantRegistry()


@receiver(setting_changed)
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests that override the tenant config or databases must not see states built from the old."""
    if setting in ("OMNITENANT_CONFIG", "DATABASES"):
        registry.clear()
