"""Channels consumers of database tenants, interleaved with a schema tenant's.

Reuses the Channels test app (``tests/channels``): ``TenantMiddleware`` in front of consumers
with ``TenantConsumerMixin`` that write and read through ``database_sync_to_async`` and the
async ORM. Under the ``channels`` harness the shared DB thread keeps its connection between
messages, so it must switch databases; under ``asgiref`` it gives it back after each call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from django.db import connections
from django.urls import path as route

from omnitenant_async import get_current_state, tenant_context
from omnitenant_async.channels import TenantConsumerMixin, TenantMiddleware
from omnitenant_async.provisioning import get_tenant_backend

from .channels.harness import HARNESSES, Socket, close_all, connect_all, recv_all
from .database_helpers import drop_databases_like, main_server, prefix, second_server

DB_TENANTS = ("dbch1", "dbch2")  # on the main server and on the second one
SCHEMA_TENANT = "t21"
TAG = "dbch-"


def sync_probe(tag: str) -> dict[str, Any]:
    """Write a note and read it back with the marker (sync ORM), wherever the tenant lives."""
    from demo.notes.models import Marker, Note

    note = Note.objects.create(text=tag)
    state = get_current_state()
    return {
        "ctx": state.tenant_id if state is not None else None,
        "marker": Marker.objects.get().tenant_id,
        "note": Note.objects.filter(pk=note.pk, text=tag).exists(),
    }


async def async_probe(tag: str) -> dict[str, Any]:
    from demo.notes.models import Marker, Note

    reply: dict[str, Any] = await database_sync_to_async(sync_probe)(tag + "-s")
    note = await Note.objects.acreate(text=tag + "-a")
    reply["marker_async"] = (await Marker.objects.aget()).tenant_id
    reply["note_async"] = await Note.objects.filter(pk=note.pk, text=note.text).aexists()
    return reply


class SyncProbe(TenantConsumerMixin, WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=json.dumps(sync_probe(json.loads(text_data or "{}")["tag"])))


class AsyncProbe(TenantConsumerMixin, AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        reply = await async_probe(json.loads(text_data or "{}")["tag"])
        await self.send(text_data=json.dumps(reply))


class PlainProbe(TenantConsumerMixin, AsyncConsumer):
    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        reply = await async_probe(json.loads(message["text"])["tag"])
        await self.send({"type": "websocket.send", "text": json.dumps(reply)})

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer


def application() -> Any:
    from channels.routing import URLRouter

    return TenantMiddleware(
        URLRouter(
            [
                route("ws/sync/", SyncProbe.as_asgi()),
                route("ws/async/", AsyncProbe.as_asgi()),
                route("ws/plain/", PlainProbe.as_asgi()),
            ]
        )
    )


@pytest.fixture(scope="module")
def channel_db_tenants(tenants: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from demo.seed import create_database_tenant

    servers = dict(zip(DB_TENANTS, (main_server(), second_server()), strict=True))
    for server in servers.values():
        drop_databases_like(server, prefix() + "dbch")

    def create(tenant_id: str) -> Any:
        try:
            database = servers[tenant_id].database_config(prefix() + tenant_id)
            return create_database_tenant(
                tenant_id, database=database, domains=[f"{tenant_id}.localhost"]
            )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        created = {t.tenant_id: t for t in pool.map(create, DB_TENANTS)}
    yield {**created, SCHEMA_TENANT: tenants[SCHEMA_TENANT]}
    from demo.notes.models import Note

    with tenant_context(tenants[SCHEMA_TENANT]):
        Note.objects.filter(text__startswith=TAG).delete()
    for tenant in created.values():
        get_tenant_backend(tenant).delete(drop=True)
    connections.close_all()


@pytest.mark.asyncio
@pytest.mark.parametrize("harness", HARNESSES)
@pytest.mark.parametrize("path", ["/ws/sync/", "/ws/async/", "/ws/plain/"])
async def test_database_tenant_consumers_read_and_write_their_own_database(
    channel_db_tenants: dict[str, Any], harness: str, path: str
) -> None:
    ids = [*DB_TENANTS, SCHEMA_TENANT, DB_TENANTS[0]]  # two sockets of dbch1
    sockets = [Socket(application(), harness, path, f"{t}.localhost") for t in ids]
    await connect_all(sockets, harness)
    try:
        for round_ in range(3):
            for socket, tenant_id in zip(sockets, ids, strict=True):
                await socket.send({"op": "probe", "tag": f"{TAG}{tenant_id}-{path}-{round_}"})
            replies = await recv_all(sockets, harness)
            for tenant_id, reply in zip(ids, replies, strict=True):
                assert reply["ctx"] == reply["marker"] == tenant_id and reply["note"], reply
                if "marker_async" in reply:
                    assert reply["marker_async"] == tenant_id and reply["note_async"], reply
    finally:
        await close_all(sockets)
    await assert_notes_stayed_home(channel_db_tenants)


async def assert_notes_stayed_home(tenants: dict[str, Any]) -> None:
    from demo.notes.models import Note

    for tenant_id, tenant in tenants.items():
        async with tenant_context(tenant):
            texts = [n.text async for n in Note.objects.filter(text__startswith=TAG)]
        assert texts, tenant_id
        assert all(text.startswith(f"{TAG}{tenant_id}-") for text in texts), (tenant_id, texts)
