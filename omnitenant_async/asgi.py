"""An ASGI entry point whose requests run their sync work on reused threads.

Django's :class:`~django.core.handlers.asgi.ASGIHandler` runs each request in a fresh
``ThreadSensitiveContext``: its first thread-sensitive call (a sync middleware or view, every
``aget()``, ``response.close()``) starts a new OS thread, joined when the request ends. That
costs about half a millisecond a request. :func:`get_asgi_application` returns a drop-in
replacement that takes a thread from a bounded set of single-thread executors
(``OMNITENANT_CONFIG["ASGI_THREADS"]``), runs the request inside
``ThreadSensitiveContext(executor=...)`` and gives the thread back afterwards: one request per
thread at a time, so Django's per-thread semantics hold (each request has its thread's own
``DatabaseWrapper`` to itself). When every thread is busy, a request waits for one.

Before a thread serves the next request, whatever the request left on it is undone, on that
thread, whether or not Django sent ``request_finished`` (it does not when ``send`` raises: a
``CONNECT`` under uvicorn's h11 parser, a client that reset mid-response): every database
connection it opened is returned (an ``atomic`` block left open is rolled back and forgotten),
and the wrapper's per-request state (``needs_rollback``, savepoints, ``on_commit`` callbacks,
execute wrappers, ``queries_log``, ``force_debug_cursor``) is reset. Translation and the script
prefix live in the request's context (asgiref ``Local``), not on the thread; they are reset at
the end of the request as well.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import django
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.urls import clear_script_prefix
from django.utils import translation

__all__ = ["RequestThreads", "TenantASGIHandler", "get_asgi_application", "release_thread"]

logger = logging.getLogger("omnitenant_async.asgi")

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Threads when neither ASGI_THREADS nor the master alias's pool size says otherwise.
DEFAULT_THREADS = 8
#: psycopg_pool's defaults: min_size=4, max_size=min_size.
_PSYCOPG_POOL_DEFAULT = 4


class RequestThread(ThreadPoolExecutor):
    """A single-thread executor that knows whether the current request used it."""

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self.used = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        self.used = True
        return super().submit(fn, *args, **kwargs)


class RequestThreads:
    """At most ``size`` reused request threads; :meth:`acquire` waits while all are taken.

    Threads are started on demand and never stopped. Idle ones are handed out last-in first-out
    (the most recently used thread is the warmest), waiting requests first-come first-served.
    """

    def __init__(self, size: int, name: str = "omnitenant-asgi") -> None:
        if size < 1:
            raise ValueError(f"RequestThreads needs at least one thread, not {size}.")
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[RequestThread] = []
        self._created = 0
        self._waiters: deque[asyncio.Future[RequestThread]] = deque()

    @property
    def started(self) -> int:
        """How many threads exist (idle or serving a request)."""
        return self._created

    @property
    def waiting(self) -> int:
        """How many requests wait for a thread."""
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> RequestThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._created < self.size:
                self._created += 1
                return RequestThread(f"{self.name}-{self._created - 1}")
            waiter: asyncio.Future[RequestThread] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed a thread just as the wait was cancelled: pass it on.
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, thread: RequestThread) -> None:
        """Give ``thread`` to the next waiting request, or back to the idle set."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.done():
                    continue  # cancelled while waiting
                loop = waiter.get_loop()
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    waiter.set_result(thread)
                else:
                    loop.call_soon_threadsafe(self._hand_over, waiter, thread)
                return
            self._idle.append(thread)

    def _hand_over(self, waiter: asyncio.Future[RequestThread], thread: RequestThread) -> None:
        if waiter.done():
            self.release(thread)
        else:
            waiter.set_result(thread)


def release_thread() -> None:
    """Undo what a request left on the current thread (run it on the request's thread).

    Every initialised connection of this thread goes back (to the pool, or is closed), an
    ``atomic`` block left open is rolled back and forgotten, and the wrapper is left as a new
    one would be, so the next request on this thread starts clean. Connections shared with
    other threads (``inc_thread_sharing()``) are left to whoever shared them, as
    ``engines.leases`` does.
    """
    for conn in connections.all(initialized_only=True):
        if conn.allow_thread_sharing:
            continue
        try:
            _release_wrapper(conn)
        except Exception:
            logger.warning(
                "Could not release the connection of %r after a request.",
                conn.alias,
                exc_info=True,
            )


def _release_wrapper(conn: Any) -> None:
    left_in_atomic = conn.in_atomic_block
    try:
        if left_in_atomic and conn.connection is not None and not conn.closed_in_transaction:
            try:
                conn._rollback()  # the wrapper's own: the engine forgets the search_path too
            except Exception:
                logger.debug("Rollback of a transaction left open failed", exc_info=True)
        if conn.closed_in_transaction:
            # close() inside the atomic block already gave the connection back, but kept it
            # on the wrapper: drop it, never use it again.
            conn.connection = None
        conn.in_atomic_block = False  # so close() really lets go of the connection
        conn.close()
    finally:
        conn.connection = None
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.atomic_blocks = []
        conn.needs_rollback = False
        conn.rollback_exc = None
        conn.closed_in_transaction = False
        conn.commit_on_exit = True
        conn.savepoint_state = 0
        conn.run_on_commit = []
        conn.run_commit_hooks_on_set_autocommit_on = False
        conn.errors_occurred = False
        conn.execute_wrappers = []
        conn.force_debug_cursor = False
        conn.queries_log.clear()


def _reset_context() -> None:
    """The request's context-local state (a no-op unless the server shares contexts)."""
    translation.deactivate()
    clear_script_prefix()


def _log_release_error(future: Future[None]) -> None:
    if not future.cancelled() and (err := future.exception()) is not None:
        logger.error("Releasing a request thread failed", exc_info=err)


class TenantASGIHandler(ASGIHandler):
    """Django's ASGI handler with each request's sync work on a reused thread."""

    _threads: RequestThreads | None = None

    def __init__(self, threads: RequestThreads | None = None) -> None:
        super().__init__()
        self._threads = threads

    @property
    def threads(self) -> RequestThreads:
        """This handler's request threads: the process's shared set unless given one.

        Looked up lazily: subclasses that skip ``__init__`` (``ASGIStaticFilesHandler``
        wrapping an application) still work.
        """
        if self._threads is None:
            self._threads = shared_threads(configured_threads())
        return self._threads

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = await self.threads.acquire()
        thread.used = False
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            _reset_context()
            if thread.used:
                # The executor runs one call at a time, in order: the release runs before
                # anything the thread's next request submits, even if this task is cancelled.
                future = thread.submit(release_thread)
                future.add_done_callback(_log_release_error)
            self.threads.release(thread)


def pool_max_size(alias: str | None = None) -> int | None:
    """``max_size`` of ``alias``'s ``OPTIONS["pool"]`` (None: the alias is not pooled)."""
    if alias is None:
        raw = getattr(settings, "OMNITENANT_CONFIG", None)
        alias = raw.get("MASTER_DB_ALIAS", "default") if isinstance(raw, dict) else "default"
    db = settings.DATABASES.get(alias) or {}
    options = db.get("OPTIONS") or {}
    pool = options.get("pool") if isinstance(options, dict) else None
    if not pool:
        return None
    sizes = pool if isinstance(pool, dict) else {}
    return int(sizes.get("max_size") or sizes.get("min_size") or _PSYCOPG_POOL_DEFAULT)


def configured_threads() -> int:
    """``OMNITENANT_CONFIG["ASGI_THREADS"]``, or the master pool's ``max_size``, or 8.

    Read from the raw settings: the entry point also serves projects without the rest of
    ``OMNITENANT_CONFIG``.
    """
    raw = getattr(settings, "OMNITENANT_CONFIG", None)
    value = raw.get("ASGI_THREADS") if isinstance(raw, dict) else None
    if value is None:
        return pool_max_size() or DEFAULT_THREADS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ImproperlyConfigured(
            f"OMNITENANT_CONFIG['ASGI_THREADS'] = {value!r}: use a whole number of threads >= 1 "
            "(None: the master pool's max_size)."
        )
    return value


_lock = threading.Lock()
_shared: dict[int, RequestThreads] = {}


def shared_threads(size: int) -> RequestThreads:
    """The process's request threads of ``size`` (one set, however many handlers)."""
    with _lock:
        found = _shared.get(size)
        if found is None:
            found = _shared[size] = RequestThreads(size)
        return found


def get_asgi_application() -> TenantASGIHandler:
    """Like :func:`django.core.asgi.get_asgi_application`, with reused request threads."""
    django.setup(set_prefix=False)
    return TenantASGIHandler()
