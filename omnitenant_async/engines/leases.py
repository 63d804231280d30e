"""A pooled connection never outlives the thread that checked it out.

Django returns a request's connections on ``request_finished``. Under ASGI that signal is
skipped when the response cannot be sent: Django's ``ASGIHandler`` lets the exception from
``send`` (a ``CONNECT`` request under uvicorn's h11 parser, a client that reset mid-response)
escape before ``response.close()``. The request's thread then ends holding its connection, and
the pool counts it as in use forever: a few such requests drained it for every tenant.

Each thread that checks a connection out holds one :class:`_Leases` in a ``threading.local``.
CPython drops a thread's locals when the thread ends - for Django's ASGI handler, right after
each request, whose thread-sensitive executor is shut down - and ``_Leases.__del__`` then
closes the thread's wrappers, which gives their connections back to the pool.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

logger = logging.getLogger("omnitenant_async.engines")


class _Leases:
    """The database wrappers of one thread that checked out a pooled connection."""

    __slots__ = ("wrappers",)

    def __init__(self) -> None:
        self.wrappers: dict[int, Any] = {}

    def __del__(self) -> None:
        if sys.is_finalizing():
            return  # interpreter shutdown: the pools are going away with the process
        for wrapper in self.wrappers.values():
            release(wrapper)


class _ThreadLeases(threading.local):
    """``leases`` is ``None`` in a thread that has none yet: read without an AttributeError
    raised and dropped (what ``getattr(local, name, None)`` costs on each new thread)."""

    leases: _Leases | None = None


_local = _ThreadLeases()


def track(wrapper: Any) -> None:
    """Remember ``wrapper``: its connection goes back to the pool when this thread ends."""
    leases = _local.leases
    if leases is None:
        leases = _local.leases = _Leases()
    leases.wrappers[id(wrapper)] = wrapper


def release(wrapper: Any) -> None:
    """Give ``wrapper``'s connection back (the engine's ``_close`` knows to which pool)."""
    if wrapper.connection is None:
        return
    if wrapper.allow_thread_sharing:
        # inc_thread_sharing(): another thread may still use this connection, and whoever
        # shared it closes it (Django's contract; its ThreadTests rely on it). Closing it here
        # would hand it to the next checkout while that thread still holds it.
        return
    try:
        wrapper.close()
    except Exception:  # a finaliser must not raise; the pool then discards the connection
        logger.warning(
            "Could not return the connection of %r left open by an ended thread.",
            wrapper.alias,
            exc_info=True,
        )
