"""Is a pooled connection still alive? Answered without a round trip in the common case.

A server restart (or ``pg_terminate_backend``) sends an idle connection an error and closes it.
Without a check, each connection idle in the pool then fails the next request that gets it.
psycopg_pool's own check (``check_connection``, Django's ``CONN_HEALTH_CHECKS``) sends an empty
query on every checkout: one round trip per request, about 70 µs here. An idle connection in
autocommit has nothing to read, so a non-blocking ``select()`` on its socket tells whether
anything (that error, the EOF) arrived; only then is the round trip made.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool


def check_cheaply(conn: Any) -> None:
    """A psycopg_pool ``check``: raise if ``conn`` is broken; a syscall when it is quiet."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError) as err:
        raise psycopg.OperationalError(f"the connection's socket is unusable: {err}") from err
    if readable:  # something arrived while idle: an error and EOF after a restart, or a notice
        ConnectionPool.check_connection(conn)
