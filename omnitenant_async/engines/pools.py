"""Connection pools per tenant database, kept in a bounded LRU.

Every open ``psycopg_pool.ConnectionPool`` costs two threads and up to ``max_size`` server
connections, so one per tenant database does not scale. The registry keeps at most
``max_pools`` of them and closes the least recently used *idle* one to make room. A pool with a
connection checked out is never closed under its user: when every pool is busy, a checkout for
a new database waits (up to ``timeout``) for one to become idle. So a process never holds more
than ``max_pools x max_size`` server connections to tenant databases, whatever their number.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from . import forks

__all__ = ["ExitAwareConnection", "PoolBudgetExhausted", "PoolRegistry", "pool_registry"]

# How long close() waits for the server to end the backend (it normally takes under 1 ms).
BACKEND_EXIT_WAIT = 1.0


class PoolBudgetExhausted(PoolTimeout):
    """Every pool slot is busy and none became free in time."""


class ExitAwareConnection(psycopg.Connection[Any]):
    """A connection whose ``close()`` returns once the server's backend is gone.

    A closed connection's backend stays in ``pg_stat_activity`` and holds its
    ``max_connections`` slot for a moment after the client hangs up, so a pool opened right
    after another was closed could briefly exceed the budget as the server counts it. Keeping
    a duplicate of the socket and waiting for the server to close its end closes that gap.
    """

    def close(self) -> None:
        if self.closed:
            return
        try:
            watcher: socket.socket | None = socket.socket(fileno=os.dup(self.pgconn.socket))
        except (OSError, psycopg.Error):
            watcher = None  # already broken: nothing to wait for
        super().close()
        if watcher is not None:
            with watcher:
                _wait_for_eof(watcher, BACKEND_EXIT_WAIT)


def _wait_for_eof(sock: socket.socket, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                return
    except OSError:  # timeout or reset: stop waiting
        return


@dataclass(eq=False, slots=True)
class _Entry:
    key: str
    pool: ConnectionPool
    in_use: int = 0
    # Set once the pools evicted to make room for this one are closed: until then their
    # connections still count against the budget, so nobody may connect through this one.
    ready: threading.Event = field(default_factory=threading.Event)


class PoolRegistry:
    """An LRU of pools keyed by database; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.created = 0
        self.evicted = 0

    def checkout(
        self,
        key: str,
        make_pool: Callable[[], ConnectionPool],
        *,
        max_pools: int,
        timeout: float,
    ) -> Any:
        """A connection to database ``key``, from its pool (made by ``make_pool`` if new)."""
        deadline = time.monotonic() + timeout
        entry = self._reserve(key, make_pool, max(max_pools, 1), deadline)
        try:
            if not entry.ready.wait(max(deadline - time.monotonic(), 0)):
                raise PoolBudgetExhausted(f"The pool for {key!r} did not become ready in time.")
            entry.pool.open()
            conn: Any = entry.pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
        except BaseException:
            self._release(entry)
            raise
        conn._ot_entry = entry
        return conn

    def checkin(self, conn: Any) -> None:
        """Give ``conn`` back to its pool (closed instead if its pool was closed meanwhile)."""
        entry: _Entry | None = getattr(conn, "_ot_entry", None)
        conn._ot_entry = None
        try:
            pool = getattr(conn, "_pool", None)
            if pool is not None:
                pool.putconn(conn)
            else:
                conn.close()
        finally:
            if entry is not None:
                self._release(entry)

    def _reserve(
        self, key: str, make_pool: Callable[[], ConnectionPool], max_pools: int, deadline: float
    ) -> _Entry:
        victims: list[ConnectionPool] = []
        created: _Entry | None = None
        try:
            with self._cond:
                while True:
                    entry = self._entries.get(key)
                    if entry is None:
                        victims += self._evict_idle(max_pools - 1)
                        if len(self._entries) < max_pools:
                            entry = created = self._entries[key] = _Entry(key, make_pool())
                            self.created += 1
                    if entry is not None:
                        self._entries.move_to_end(key)
                        entry.in_use += 1
                        return entry
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PoolBudgetExhausted(
                            f"No connection pool for tenant database {key!r}: all "
                            f"{max_pools} pools (DATABASE_POOL_MAX_POOLS) are busy. Raise "
                            "DATABASE_POOL_MAX_POOLS (mind the server's max_connections) or "
                            "DATABASE_POOL_TIMEOUT, or release connections sooner."
                        )
                    self._cond.wait(remaining)
        finally:
            try:
                for pool in victims:
                    _close_pool(pool)
            finally:
                if created is not None:
                    created.ready.set()

    def _evict_idle(self, keep: int) -> list[ConnectionPool]:
        """Pop least recently used idle pools until at most ``keep`` remain; lock held."""
        victims: list[ConnectionPool] = []
        while len(self._entries) > keep:
            idle = next((e for e in self._entries.values() if e.in_use == 0), None)
            if idle is None:
                break
            del self._entries[idle.key]
            victims.append(idle.pool)
            self.evicted += 1
        return victims

    def _release(self, entry: _Entry) -> None:
        with self._cond:
            entry.in_use -= 1
            if entry.in_use == 0:
                self._cond.notify_all()

    def get(self, key: str) -> ConnectionPool | None:
        """The pool of ``key`` if one is open, without touching the LRU order."""
        entry = self._entries.get(key)
        return entry.pool if entry is not None else None

    def keys(self) -> list[str]:
        """Open pools' keys, least recently used first."""
        with self._cond:
            return list(self._entries)

    def in_use(self) -> dict[str, int]:
        with self._cond:
            return {key: e.in_use for key, e in self._entries.items()}

    def close(self, key: str) -> None:
        """Close the pool of ``key`` now (checked-out connections close when returned)."""
        with self._cond:
            entry = self._entries.pop(key, None)
        if entry is not None:
            _close_pool(entry.pool)

    def forget_all(self) -> list[ConnectionPool]:
        """In a forked child: drop the parent's pools without closing them (see ``forks``)."""
        pools = [entry.pool for entry in self._entries.values()]
        self._cond = threading.Condition()
        self._entries = OrderedDict()
        return pools

    def close_all(self) -> None:
        with self._cond:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            _close_pool(entry.pool)


def _close_pool(pool: ConnectionPool) -> None:
    # Idle connections close now; the two pool threads stop within milliseconds.
    pool.close(timeout=5.0)


pool_registry = PoolRegistry()
forks.on_fork(pool_registry.forget_all)
# Close pools while their threads can still stop (psycopg_pool waits 5 s for them at exit).
atexit.register(pool_registry.close_all)
