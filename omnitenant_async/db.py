"""Give pooled connections back early.

Under ASGI a request keeps its checked-out connection until ``request_finished``. An async view
that is done with the database and then awaits slow non-database I/O (an HTTP call, a queue)
would hold a pool slot all that time; ``await arelease_connections()`` hands it back first.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connections


def release_connections() -> int:
    """Return this thread's idle connections to their pools; skip any inside ``atomic()``.

    Returns how many were released.
    """
    released = 0
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block:
            conn.close()
            released += 1
    return released


async def arelease_connections() -> int:
    """Async twin: runs on the request's own thread, where its connections live."""
    return await sync_to_async(release_connections)()
