"""Registry invalidation across processes and hosts, through PostgreSQL's ``NOTIFY``/``LISTEN``.

Each process caches tenants (``registry``); without this, another worker kept serving a moved
domain to its old tenant, or a deleted tenant, for the whole ``REGISTRY_TTL``.

* **Send.** Saving or deleting a tenant or domain row (``registry.invalidate_registry``, the
  ``post_save``/``post_delete`` receiver) runs ``SELECT pg_notify(...)`` on the
  same connection, inside the same transaction: PostgreSQL delivers it when that transaction
  commits, and never for a rollback. :func:`notify` does the same for changes the ORM signals
  do not see (``QuerySet.update()``, ``bulk_create``, raw SQL): call it in the changing
  transaction; SQL outside Django runs ``SELECT pg_notify('omnitenant_registry', '')``.
* **Receive.** One daemon thread per process holds one plain psycopg connection (never a pooled
  one: ``LISTEN`` is session state) and clears the whole registry on each notification. It is
  started by the first request or WebSocket connection (:func:`ensure_listener`, a flag check),
  or explicitly by :func:`start_listener`. It connects with the master alias's settings, or
  ``INVALIDATION_DSN`` when that alias goes through a transaction pooler.
* **Reconnect.** Notifications sent while the listener is down are lost, so every (re)connect
  drops the whole cache once ``LISTEN`` is active. ``REGISTRY_TTL`` stays as the backstop.

Every notification clears everything: tenant changes are rare, a cleared entry costs one
query on its next use, and a precise invalidation must also know a renamed domain's old value
or a cascade's rows. The payload (``<process token>:<model label>``) only lets a process skip
its own echoes, which its ``on_commit`` already handled.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from psycopg.conninfo import conninfo_to_dict

from .conf import get_config
from .registry import registry

logger = logging.getLogger("omnitenant_async.invalidation")

#: The ``LISTEN``/``NOTIFY`` channel (one per database, so deployments on one server are apart).
CHANNEL = "omnitenant_registry"
#: ``application_name`` of the listener's session (unless the settings name one): find it in
#: ``pg_stat_activity``.
APPLICATION_NAME = "omnitenant-invalidation"
#: Seconds between two reconnect attempts, at most; the first retry is at once.
MAX_BACKOFF = 1.0
#: Seconds of silence after which the listener checks its connection with a query.
HEARTBEAT = 10.0

_subscribers_lock = threading.Lock()
_subscribers: dict[object, Callable[[], None]] = {}  # by key: O(1) to leave
_token = uuid.uuid4().hex[:12]


def subscribe(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` after each invalidation, from any thread; return the unsubscriber.

    ``TenantConsumerMixin`` uses it to re-check live WebSockets. Keep callbacks short and
    thread-safe (e.g. ``loop.call_soon_threadsafe``): they run in the listener's thread.
    """
    key = object()
    with _subscribers_lock:
        _subscribers[key] = callback

    def unsubscribe() -> None:
        with _subscribers_lock:
            _subscribers.pop(key, None)

    return unsubscribe


def invalidate(reason: str = "") -> None:
    """Drop this process's whole registry cache and tell the subscribers (this process only)."""
    registry.clear()
    with _subscribers_lock:
        callbacks = list(_subscribers.values())
    logger.debug("Registry invalidated (%s); %d subscribers.", reason, len(callbacks))
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("An invalidation subscriber failed.")


def notify(using: str | None = None, label: str = "") -> None:
    """Invalidate every process's registry when the current transaction on ``using`` commits.

    Call it after changing tenant or domain rows in a way that sends no ``post_save`` /
    ``post_delete`` signal (``QuerySet.update()``, ``bulk_create``, raw SQL). Outside a
    transaction it takes effect at once.
    """
    alias = using or get_config().MASTER_DB_ALIAS
    registry.clear()  # this process at once (a load racing the write is discarded) ...
    transaction.on_commit(lambda: invalidate(f"commit of {label or 'a change'}"), using=alias)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return  # ... and, through PostgreSQL, every other one
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{_token}:{label}"])


async def anotify(using: str | None = None, label: str = "") -> None:
    """:func:`notify` from async code."""
    await sync_to_async(notify)(using, label)


class Listener:
    """The process's ``LISTEN`` connection, in a daemon thread that reconnects forever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: Set while ``LISTEN`` is active; read by tests and health checks.
        self.connected = threading.Event()
        self.connects = 0  # successful (re)connections

    def start(self) -> None:
        """Start the thread unless it runs (or listening is off); never blocks."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="omnitenant-invalidation", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening (the cache then lives for ``REGISTRY_TTL`` again)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        delay, failing = 0.0, False
        while not self._stop.is_set():
            try:
                with _connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connects += 1
                    self.connected.set()
                    # Changes committed while we were not listening were not heard.
                    invalidate("listener connected")
                    if failing:
                        logger.info("Invalidation listener reconnected.")
                    delay, failing = 0.0, False
                    self._serve(conn)
            except Exception as err:  # psycopg.Error, a bad DSN, ...: keep trying
                log = logger.debug if failing else logger.warning
                log("Invalidation listener lost its connection (%s); reconnecting.", err)
                failing = True
            finally:
                self.connected.clear()
            self._stop.wait(delay)
            delay = min(max(delay * 2, 0.05), MAX_BACKOFF)

    def _serve(self, conn: Any) -> None:
        quiet_since = time.monotonic()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=1.0):
                quiet_since = time.monotonic()
                if not note.payload.startswith(f"{_token}:"):  # our own commits cleared already
                    invalidate(f"notification {note.payload!r}")
            if time.monotonic() - quiet_since > HEARTBEAT:
                conn.execute("SELECT 1")  # a dead peer raises here, not after hours of silence
                quiet_since = time.monotonic()


#: Defaults of the listener's connection: TCP keepalives notice a vanished server in seconds.
_SESSION_DEFAULTS: dict[str, Any] = {
    "application_name": APPLICATION_NAME,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


def connection_params() -> dict[str, Any]:
    """The listener's psycopg parameters: ``INVALIDATION_DSN``, else the master alias's."""
    config = get_config()
    if config.INVALIDATION_DSN:
        params: dict[str, Any] = dict(conninfo_to_dict(config.INVALIDATION_DSN))
    else:
        params = connections[config.MASTER_DB_ALIAS].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)  # Django's cursor and adapters: nothing to do with LISTEN
    return {**_SESSION_DEFAULTS, **params}


def _connect() -> Any:
    """A plain autocommit psycopg connection, never one of the pool's."""
    return psycopg.connect(**connection_params(), autocommit=True)


listener = Listener()
_started = False


def ensure_listener() -> None:
    """Start this process's listener if it is not running yet: a flag check when it is.

    The HTTP and Channels middleware and ``TenantConsumerMixin`` call it, so an ASGI process
    listens from its first request on.
    """
    if not _started:
        start_listener()


def start_listener() -> None:
    """Start listening now (e.g. in a command that serves without our middleware)."""
    global _started
    _started = True
    if get_config().INVALIDATION_LISTEN:
        listener.start()


def _after_fork_in_child() -> None:
    """A forked child has no listener thread and must not pass for its parent."""
    global _started, _token, listener
    _started = False
    _token = uuid.uuid4().hex[:12]
    listener = Listener()


os.register_at_fork(after_in_child=_after_fork_in_child)


def invalidate_registry(**kwargs: Any) -> None:
    """Signal receiver: drop the cache here now, and in every process once the change commits."""
    sender = kwargs.get("sender")
    notify(kwargs.get("using"), sender._meta.label if sender is not None else "")
