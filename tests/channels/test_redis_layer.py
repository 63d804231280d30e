"""The demo's Redis channel layer under a real uvicorn, with real ``websockets`` clients.

Two ways a default ``channels_redis`` configuration loses messages (issue 7, section 4;
docs/channels.md, "Redis in production"):

- redis-py 8 gives every connection a 5 s ``socket_timeout``, which aborts the layer's 5 s
  blocking ``BZPOPMIN``: a consumer idle for 5 s dies with ``redis.exceptions.TimeoutError``
  (channels_redis#422) and its socket with it.
- All consumer channels of one process share one Redis key, capped at ``capacity`` (default
  100) pending messages; ``group_send`` silently drops what does not fit.

The server runs the demo settings (the settings the docs recommend) and this process sends with
the same ``CHANNEL_LAYERS``: ``capacity`` is enforced by the sender.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from channels.layers import get_channel_layer
from django.test import override_settings

import demo.settings
from omnitenant_async.channels import agroup_send
from omnitenant_async.registry import registry
from tests.conftest import Server

pytestmark = pytest.mark.e2e

IDLE_SECONDS = 6.5  # longer than redis-py 8's default 5 s socket_timeout
SENDERS = 16  # concurrent group_send calls: a burst, within redis-py's connection pool
ERROR_MARKS = ("Traceback", "ERROR", "Exception", "TimeoutError")


def demo_layers(prefix: str) -> dict[str, Any]:
    """The demo's own CHANNEL_LAYERS (built from OMNITENANT_REDIS_URL), under ``prefix``."""
    layers: dict[str, dict[str, Any]] = copy.deepcopy(demo.settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer", (
        "demo.settings did not configure Redis: is OMNITENANT_REDIS_URL set?"
    )
    config["prefix"] = prefix
    return dict(layers)


@pytest.fixture
def redis_server(tenants: dict[str, Any], redis_url: str) -> Iterator[tuple[Server, str]]:
    """The demo on its own uvicorn and Redis, under a key prefix of this test only."""
    prefix = f"omnitenant-redis-{uuid.uuid4().hex[:8]}"
    env = {"OMNITENANT_REDIS_URL": redis_url, "OMNITENANT_REDIS_PREFIX": prefix}
    server = Server("demo.asgi:application", env=env)
    yield server, prefix
    server.stop()


@asynccontextmanager
async def sockets(server: Server, owners: list[str]) -> AsyncIterator[list[Any]]:
    """One feed socket per entry of ``owners`` (tenant ids), each past its hello."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_open(server, owner)) for owner in owners]
    opened = [task.result() for task in tasks]
    try:
        yield opened
    finally:
        await asyncio.gather(*(socket.close() for socket in opened))


async def _open(server: Server, owner: str) -> Any:
    socket = await websockets.connect(
        f"ws://{owner}.localhost:{server.port}/ws/feed/", host="127.0.0.1", open_timeout=10
    )
    hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert hello["type"] == "hello" and hello["tenant"] == owner
    return socket


async def send_burst(layers: dict[str, Any], messages: list[tuple[str, str]]) -> None:
    """``agroup_send`` each ``(tenant_id, text)`` to its tenant's feed group, all at once."""
    states = {t: await registry.aget_by_tenant_id(t) for t, _ in messages}
    senders = asyncio.Semaphore(SENDERS)

    async def send(i: int, tenant_id: str, text: str) -> None:
        async with senders:
            event = {"type": "feed.note", "id": i, "text": text}
            await agroup_send("feed", event, tenant=states[tenant_id])

    with override_settings(CHANNEL_LAYERS=layers):
        await asyncio.gather(*(send(i, t, text) for i, (t, text) in enumerate(messages)))
        await get_channel_layer().close_pools()


async def received_texts(socket: Any, expected: int, timeout: float = 10) -> list[str]:
    """The texts of the notes ``socket`` receives until ``expected`` or ``timeout`` (whichever
    first), checking each is a note of the socket's tenant; a closed socket ends early."""
    texts: list[str] = []
    owner = socket.request.headers["Host"].split(".")[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(texts) < expected:
        try:
            raw = await asyncio.wait_for(socket.recv(), max(deadline - loop.time(), 0))
        except (TimeoutError, websockets.ConnectionClosed):
            break
        note = json.loads(raw)
        assert note["type"] == "note" and note["tenant"] == owner, (owner, note)
        texts.append(note["text"])
    return texts


async def nothing_more(socket: Any, timeout: float = 0.5) -> bool:
    try:
        message = await asyncio.wait_for(socket.recv(), timeout)
    except (TimeoutError, websockets.ConnectionClosed):
        return True
    raise AssertionError(f"unexpected message {message!r}")


def log_errors(server: Server) -> list[str]:
    """The server log's error lines (a consumer that dies logs its traceback)."""
    return [line for line in server.output().splitlines() if any(m in line for m in ERROR_MARKS)]


async def lost_deliveries(
    sockets: list[Any], owners: list[str], messages: list[tuple[str, str]]
) -> tuple[int, int]:
    """``(lost, expected)`` deliveries of ``messages`` to ``sockets``: every socket must get each
    note of its own tenant once. A note of another tenant, or one received twice, fails here."""
    expected = [sorted(text for t, text in messages if t == owner) for owner in owners]
    got = await asyncio.gather(
        *(received_texts(s, len(e)) for s, e in zip(sockets, expected, strict=True))
    )
    lost = 0
    for owner, want, have in zip(owners, expected, got, strict=True):
        assert len(have) == len(set(have)), f"duplicates on a socket of {owner}"
        assert set(have) <= set(want), f"a socket of {owner} got {set(have) - set(want)}"
        lost += len(want) - len(have)
    return lost, sum(map(len, expected))


@pytest.mark.asyncio
async def test_idle_sockets_on_redis_receive_every_group_message(
    redis_server: tuple[Server, str],
) -> None:
    """Sockets idle for longer than redis-py 8's default socket_timeout are still served."""
    server, prefix = redis_server
    owners = ["t16", "t16", "t17", "t17", "t18", "t18"]
    async with sockets(server, owners) as opened:
        await asyncio.sleep(IDLE_SECONDS)
        messages = [(t, f"idle-{t}-{i}") for i in range(3) for t in sorted(set(owners))]
        await send_burst(demo_layers(prefix), messages)
        lost, total = await lost_deliveries(opened, owners, messages)
        assert lost == 0, f"lost {lost} of {total} deliveries; server log: {log_errors(server)}"
        assert log_errors(server) == []
        assert all(await asyncio.gather(*(nothing_more(s) for s in opened)))


@pytest.mark.asyncio
async def test_burst_over_default_capacity_reaches_every_socket(
    redis_server: tuple[Server, str],
) -> None:
    """250 group messages to 50 sockets of 5 tenants, at once: more than channels_redis's
    default capacity of 100 pending messages in the server process's one key."""
    server, prefix = redis_server
    tenants = ["t16", "t17", "t18", "t19", "t20"]
    owners = tenants * 10
    async with sockets(server, owners) as opened:
        messages = [(t, f"burst-{t}-{i}") for i in range(50) for t in tenants]
        await send_burst(demo_layers(prefix), messages)
        lost, total = await lost_deliveries(opened, owners, messages)
        assert lost == 0, f"lost {lost} of {total} deliveries; server log: {log_errors(server)}"
        assert log_errors(server) == []
        assert all(await asyncio.gather(*(nothing_more(s) for s in opened)))


@pytest.mark.asyncio
async def test_pubsub_layer_survives_idle_at_redis_py_defaults(redis_url: str) -> None:
    """Why W020 leaves the pub/sub layer alone: it polls with its own 0.1 s read timeout, so
    redis-py 8's default socket_timeout never fires, even on a bare host entry."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    prefix = f"omnitenant-pubsub-{uuid.uuid4().hex[:8]}"
    receiver = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
    sender = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
    channel = await receiver.new_channel()
    await receiver.group_add("t.t16.feed", channel)
    waiting = asyncio.ensure_future(receiver.receive(channel))
    try:
        await asyncio.sleep(IDLE_SECONDS)
        assert not waiting.done(), waiting.exception()
        await sender.group_send("t.t16.feed", {"type": "feed.note", "text": "after idle"})
        assert await asyncio.wait_for(waiting, 5) == {"type": "feed.note", "text": "after idle"}
    finally:
        waiting.cancel()
        await receiver.flush()
        await sender.flush()
