"""No request keeps a pooled connection after it ends, however it ends.

A ``CONNECT`` request through uvicorn's h11 parser makes ``send`` raise inside Django's ASGI
handler, which then skips ``request_finished``: the request's pooled connection was never
returned, and a handful of such requests drained the pool for every tenant (500 on a pool
timeout until a restart). A client that resets mid-response ends the request the same way.
The engine now returns a connection when the thread that checked it out ends.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import connection, connections

from omnitenant_async import tenant_context

from .conftest import TENANT_IDS, Server
from .engine_wrapper import engine_wrapper

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tenants")]

POOL_MAX = 4
HOSTILE = 3 * POOL_MAX  # each used to keep one of the pool's connections forever


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.release_app.settings",
        "OMNITENANT_POOL_MIN": "1",
        "OMNITENANT_POOL_MAX": str(POOL_MAX),
        "OMNITENANT_POOL_TIMEOUT": "3",
    }
    srv = Server("demo.asgi:application", env=env, args=("--http", request.param))
    yield srv
    srv.stop()


def raw_request(
    server: Server, data: bytes, *, reset_after: int | None = None, timeout: float = 10
) -> bytes:
    """Send ``data``; read the answer (or ``reset_after`` bytes, then reset the connection)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    received = b""
    try:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
            if reset_after is not None and len(received) >= reset_after:
                # SO_LINGER 0: close() sends RST, the server's next send fails mid-response.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
    except (TimeoutError, ConnectionError):
        pass
    finally:
        sock.close()
    return received


def connect_request(tenant_id: str) -> bytes:
    host = f"{tenant_id}.localhost"
    return f"CONNECT /whoami/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def get_request(tenant_id: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {tenant_id}.localhost\r\n\r\n".encode()


async def checked_load(server: Server, total: int = 240) -> list[tuple[int, str | None]]:
    """``total`` concurrent requests over every tenant; (status, marker) of each."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=20) as client:

        async def one(i: int) -> tuple[int, str | None]:
            tenant_id = TENANT_IDS[i % len(TENANT_IDS)]
            response = await client.get("/whoami/", headers={"host": f"{tenant_id}.localhost"})
            marker = response.json().get("marker") if response.status_code == 200 else None
            return response.status_code, marker

        return await asyncio.gather(*(one(i) for i in range(total)))


def assert_every_answer_right(results: list[tuple[int, str | None]]) -> None:
    expected = [(200, TENANT_IDS[i % len(TENANT_IDS)]) for i in range(len(results))]
    assert results == expected


@pytest.mark.asyncio
async def test_connect_requests_do_not_drain_the_pool(server: Server) -> None:
    # httptools keeps a CONNECT connection open as a tunnel: stop reading after 1 s.
    await asyncio.gather(
        *(
            asyncio.to_thread(raw_request, server, connect_request(TENANT_IDS[i % 5]), timeout=1)
            for i in range(HOSTILE)
        )
    )
    assert_every_answer_right(await checked_load(server))
    assert "PoolTimeout" not in server.output()


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/astream/", "/sync-stream/"])
async def test_clients_resetting_mid_response_do_not_drain_the_pool(
    server: Server, path: str
) -> None:
    for i in range(HOSTILE):
        got = await asyncio.to_thread(
            raw_request, server, get_request(TENANT_IDS[i % 5], path), reset_after=1024
        )
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
    assert_every_answer_right(await checked_load(server))
    assert "PoolTimeout" not in server.output()


def test_a_thread_that_ends_without_closing_returns_its_connection(
    tenants: dict[str, Any],
) -> None:
    """The mechanism itself: a checkout outlives nothing but its thread."""
    connections.close_all()
    pool = engine_wrapper().pool
    before = in_use(pool)

    def leak() -> None:
        with tenant_context(tenants["t01"]), connection.cursor() as cursor:
            cursor.execute("SELECT tenant_id FROM notes_marker")
        # no close(), no request_finished: the thread simply ends

    threads = [threading.Thread(target=leak) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # join() may return a moment before the thread's locals are dropped.
    deadline = time.monotonic() + 2
    while in_use(pool) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert in_use(pool) == before


def test_a_connection_shared_with_other_threads_stays_open_when_its_thread_ends(
    tenants: dict[str, Any],
) -> None:
    """After ``inc_thread_sharing()`` the thread that shares a connection does not end it:
    the thread it was shared with closes it, as with Django's stock engine (Django's
    backends.tests.ThreadTests.test_default_connection_thread_local)."""
    connections.close_all()
    pool = engine_wrapper().pool
    before = in_use(pool)
    shared: list[Any] = []

    def share() -> None:
        conn = connections["default"]
        conn.inc_thread_sharing()
        with tenant_context(tenants["t01"]), conn.cursor() as cursor:
            cursor.execute("SELECT tenant_id FROM notes_marker")
        shared.append(conn)

    thread = threading.Thread(target=share)
    thread.start()
    thread.join()
    (conn,) = shared
    try:
        # Long enough for the ended thread's locals to be dropped (see the test above).
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            assert conn.connection is not None, "returned to the pool behind the sharer's back"
            time.sleep(0.02)
        assert in_use(pool) == before + 1
        with conn.cursor() as cursor:  # still usable from the thread it was shared with
            cursor.execute("SELECT 1")
    finally:
        conn.validate_thread_sharing()
        conn.close()
        conn.dec_thread_sharing()
    assert conn.connection is None
    assert in_use(pool) == before


def in_use(pool: Any) -> int:
    stats = pool.get_stats()
    return int(stats["pool_size"] - stats["pool_available"])


def test_a_new_thread_reads_no_leases_without_an_error() -> None:
    """Each request's thread asks for its leases once: ``None`` from the class, not an
    ``AttributeError`` raised and dropped (a threading.local miss costs one)."""
    from omnitenant_async.engines import leases

    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(leases._local.leases))
    thread.start()
    thread.join()
    assert seen == [None]
