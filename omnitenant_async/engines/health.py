"""Is a pooled connection still alive? Answered without a round trip in the common case.

A server restart (or ``pg_terminate_backend``) sends an idle connection an error and closes it.
Without a check, each connection idle in the pool then fails the next request that gets it.
psycopg_pool's own check (``check_connection``, Django's ``CONN_HEALTH_CHECKS``) sends an empty
query on every checkout: one round trip per request, about 70 µs here. An idle connection in
autocommit has nothing to read, so a non-blocking peek at its socket tells whether anything
(that error, the EOF) arrived; only then is the round trip made.

The peek is ``recv(fd, 1, MSG_PEEK | MSG_DONTWAIT)`` called through ``ctypes.PyDLL``, which
keeps the GIL for the call. ``select()`` gives the GIL away, and a request thread that does so
while holding a pooled connection then waits for the event loop to hand it back: behind a
transaction pooler that cost about 2 % of req/s (bench/RESULTS.md). Where libc's ``recv``
cannot be loaded (not Linux/glibc), ``select()`` does the same job.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import sys
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

_QUIET = (errno.EAGAIN, errno.EWOULDBLOCK)


def _libc_recv() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        recv = ctypes.PyDLL(None, use_errno=True).recv
    except (OSError, AttributeError):
        return None
    recv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    recv.restype = ctypes.c_ssize_t
    return recv


_recv = _libc_recv()
_PEEK_FLAGS = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
# Where the peeked byte goes. Shared by every thread: nothing reads it (a peek only says
# whether a byte is there), so concurrent writes do no harm, and a fixed address spares each
# check a ctypes object and a byref() (~0.5 µs).
_PEEK_BUFFER = ctypes.create_string_buffer(1)
_PEEK_ADDRESS = ctypes.addressof(_PEEK_BUFFER)


def _has_input(fd: int) -> bool:
    """True if bytes or an EOF are waiting on ``fd`` (raise ``OSError`` if it is unusable)."""
    if _recv is None:
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    got = _recv(fd, _PEEK_ADDRESS, 1, _PEEK_FLAGS)
    if got >= 0:
        return True  # a byte to read, or 0: the EOF of a closed socket
    code = ctypes.get_errno()
    if code in _QUIET:
        return False
    raise OSError(code, f"recv: {errno.errorcode.get(code, code)}")


def check_cheaply(conn: Any) -> None:
    """A psycopg_pool ``check``: raise if ``conn`` is broken; one syscall when it is quiet."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    try:
        arrived = _has_input(conn.fileno())
    except (OSError, ValueError) as err:
        raise psycopg.OperationalError(f"the connection's socket is unusable: {err}") from err
    if arrived:  # something arrived while idle: an error and EOF after a restart, or a notice
        ConnectionPool.check_connection(conn)
