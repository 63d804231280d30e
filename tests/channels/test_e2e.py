"""The demo's live feed under a real uvicorn, with real WebSocket clients (``websockets``)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from channels.layers import get_channel_layer
from django.test import override_settings
from websockets.exceptions import InvalidStatus

from omnitenant_async.channels import agroup_send
from omnitenant_async.registry import registry
from tests.conftest import Server

from .conftest import redis_channel_layers
from .consumers import NOTE_PREFIX

pytestmark = pytest.mark.e2e

ERROR_MARKS = ("Traceback", "ERROR", "Exception", " 500", "Internal Server Error")


@pytest.fixture(scope="module")
def feed_server(tenants: dict[str, Any]) -> Iterator[Server]:
    """The demo (ProtocolTypeRouter) on its own uvicorn, with the in-memory channel layer."""
    server = Server("demo.asgi:application", env={"OMNITENANT_REDIS_URL": ""})
    yield server
    server.stop()


@asynccontextmanager
async def feed(server: Server, host: str, path: str = "/ws/feed/") -> AsyncIterator[Any]:
    async with websockets.connect(
        f"ws://{host}:{server.port}{path}", host="127.0.0.1", open_timeout=10
    ) as socket:
        yield socket


async def recv(socket: Any, timeout: float = 5) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(socket.recv(), timeout)))


async def silent(socket: Any, timeout: float = 0.3) -> bool:
    try:
        message = await asyncio.wait_for(socket.recv(), timeout)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message!r}")


async def handshake_status(server: Server, host: str | None, path: str) -> int:
    """Send a raw upgrade request (any bytes we like) and return the response status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [f"GET {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]  # fmt: skip
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "surrogateescape"))
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status_line.split()[1])


def log_errors(server: Server, start: int = 0) -> list[str]:
    lines = server.output()[start:].splitlines()
    return [line for line in lines if any(mark in line for mark in ERROR_MARKS)]


@pytest.mark.asyncio
async def test_feed_per_tenant_broadcasts_stay_in_the_tenant(
    feed_server: Server, tenant_ids: list[str]
) -> None:
    tenants = tenant_ids[:3]
    async with (
        feed(feed_server, f"{tenants[0]}.localhost") as a1,
        feed(feed_server, f"{tenants[0].upper()}.LOCALHOST") as a2,
        feed(feed_server, f"{tenants[1]}.localhost") as b1,
        feed(feed_server, f"{tenants[1]}.localhost") as b2,
        feed(feed_server, f"{tenants[2]}.localhost") as c1,
    ):
        sockets = {a1: tenants[0], a2: tenants[0], b1: tenants[1], b2: tenants[1], c1: tenants[2]}
        for socket, owner in sockets.items():
            hello = await recv(socket)
            assert hello["type"] == "hello" and hello["tenant"] == owner
            await socket.send(json.dumps({"action": "ping"}))
            assert await recv(socket) == {"type": "pong", "tenant": owner}

        # Through the socket: the consumer creates the note and sends it to its tenant's group.
        await a1.send(json.dumps({"action": "post", "text": f"{NOTE_PREFIX}via socket"}))
        for socket in (a1, a2):
            note = await recv(socket)
            assert note["text"] == f"{NOTE_PREFIX}via socket" and note["tenant"] == tenants[0]

        # Through the HTTP view: it sends to the group with agroup_send().
        async with httpx.AsyncClient(base_url=feed_server.url, timeout=10) as client:
            for owner in tenants[1:]:
                r = await client.post(
                    "/notes/", json={"text": f"{NOTE_PREFIX}for {owner}"},
                    headers={"host": f"{owner}.localhost"},
                )  # fmt: skip
                assert r.status_code == 201
        for socket, owner in sockets.items():
            if owner != tenants[0]:
                note = await recv(socket)
                assert note == {**note, "type": "note", "text": f"{NOTE_PREFIX}for {owner}",
                                "tenant": owner}  # fmt: skip
        # Nothing else, anywhere.
        assert all(await asyncio.gather(*(silent(s) for s in sockets)))

        # Garbage from a client is answered, not fatal.
        await c1.send("not json")
        assert (await recv(c1))["type"] == "error"
        await c1.send(b"\x00\x01")
        assert (await recv(c1))["type"] == "error"
        await c1.send(json.dumps({"action": "ping"}))
        assert await recv(c1) == {"type": "pong", "tenant": tenants[2]}
    assert log_errors(feed_server) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["nobody.localhost", "a..b", "localhost", "127.0.0.1"])
async def test_unknown_malformed_and_public_hosts_are_refused(
    feed_server: Server, host: str
) -> None:
    """Closed before accept (4404, 4400, and 4403 for the public host, which has no tenant),
    which uvicorn answers with HTTP 403; the server logs no error."""
    start = len(feed_server.output())
    with pytest.raises(InvalidStatus) as refused:
        async with feed(feed_server, host):
            pass
    assert refused.value.response.status_code == 403
    await asyncio.sleep(0.1)
    assert log_errors(feed_server, start) == []


HOSTILE_HOSTS = [
    None, "", "evil.example", "t16.localhost.evil.example", "t16.localhost:99999",
    "t16.localhost:abc", "[::1", "[::1]:80", "a" * 300, "t16..localhost", "..", "-t16.localhost",
    "t16.localhost, t17.localhost", "%74%31%36.localhost", "t16.localhost\udcff", "_.localhost",
    "localhost/../t16", "t16.localhost\t",
]  # fmt: skip
HOSTILE_PATHS = [
    "/ws/feed", "/ws/feed/../../etc/passwd", "/ws/%00/", "/ws/feed/%ff%fe", "/" + "a" * 4000,
    "/ws/feed/?" + "&".join(f"k{i}=v" for i in range(200)), "/ws/nothere/", "//ws//feed//",
    "/t/t17/ws/feed/", "/ws/feed/;x", "/ws/feed/?tenant=t17", "*", "/ws/feed/%2e%2e/",
]  # fmt: skip


@pytest.mark.asyncio
async def test_hostile_hosts_and_paths_never_error(feed_server: Server) -> None:
    start = len(feed_server.output())
    statuses = {}
    for host in HOSTILE_HOSTS:
        statuses[("host", host)] = await handshake_status(feed_server, host, "/ws/feed/")
    for path in HOSTILE_PATHS:
        statuses[("path", path)] = await handshake_status(feed_server, "t16.localhost", path)
    assert all(status in (101, 400, 403) for status in statuses.values()), statuses
    assert statuses[("host", "evil.example")] == 403  # closed before accept: 4404
    assert statuses[("path", "/ws/nothere/")] == 403  # demo's catch-all route: close 4404
    assert statuses[("path", "/ws/feed/?tenant=t17")] == 101  # QUERY_PARAM is off: ignored
    # Still serving, and nothing went wrong inside.
    async with feed(feed_server, "t16.localhost") as socket:
        assert (await recv(socket))["tenant"] == "t16"
    await asyncio.sleep(0.2)
    assert log_errors(feed_server, start) == []


@pytest.mark.asyncio
async def test_feed_page(feed_server: Server) -> None:
    async with httpx.AsyncClient(base_url=feed_server.url, timeout=10) as client:
        page = await client.get("/feed/", headers={"host": "t16.localhost"})
        assert page.status_code == 200
        assert "/ws/feed/" in page.text and "T16" in page.text
        public = await client.get("/feed/", headers={"host": "localhost"})
        assert public.status_code == 404


@pytest.mark.asyncio
async def test_two_processes_share_groups_through_redis(
    tenants: dict[str, Any], tenant_ids: list[str], redis_url: str
) -> None:
    """Two uvicorn workers on Redis: a note posted to either worker, or sent from this test
    process, reaches all of its tenant's sockets wherever they are connected, and no others."""
    server = Server("demo.asgi:application", env={"OMNITENANT_REDIS_URL": redis_url}, workers=2)
    try:
        a, b = tenant_ids[:2]
        owners = [a, b] * 4
        async with asyncio.TaskGroup() as group:
            opened = [group.create_task(_open(server, f"{t}.localhost")) for t in owners]
        sockets = [task.result() for task in opened]
        try:
            for socket, owner in zip(sockets, owners, strict=True):
                assert (await recv(socket))["tenant"] == owner
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                for i in range(6):  # new connections: uvicorn's workers take turns
                    owner = owners[i % 2]
                    r = await client.post(
                        "/notes/", json={"text": f"{NOTE_PREFIX}{owner}-{i}"},
                        headers={"host": f"{owner}.localhost", "connection": "close"},
                    )  # fmt: skip
                    assert r.status_code == 201
            # And from this test process, certainly not one of the server's.
            with override_settings(CHANNEL_LAYERS=redis_channel_layers(redis_url)):
                for owner in (a, b):
                    event = {"type": "feed.note", "id": 0, "text": f"{NOTE_PREFIX}{owner}-ext"}
                    await agroup_send("feed", event, tenant=await registry.aget_by_tenant_id(owner))
                await get_channel_layer().close_pools()
            for socket, owner in zip(sockets, owners, strict=True):
                texts = sorted([(await recv(socket))["text"] for _ in range(4)])
                sent = [f"{NOTE_PREFIX}{owners[i % 2]}-{i}" for i in range(6)] + [
                    f"{NOTE_PREFIX}{a}-ext", f"{NOTE_PREFIX}{b}-ext"]  # fmt: skip
                assert texts == sorted(t for t in sent if t.startswith(f"{NOTE_PREFIX}{owner}-"))
            assert all(await asyncio.gather(*(silent(s) for s in sockets)))
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
        assert log_errors(server) == []
    finally:
        server.stop()


async def _open(server: Server, host: str) -> Any:
    return await websockets.connect(f"ws://{host}:{server.port}/ws/feed/", host="127.0.0.1")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("OMNITENANT_REDIS_URL")
    if not url:
        pytest.skip("OMNITENANT_REDIS_URL is not set: scripts/test starts Redis and exports it")
    return url
