"""Consumers under test: each kind Channels offers, with the mixin, plus naive ones without it.

Every probe reads and writes through ``database_sync_to_async`` (sync ORM on Channels' DB
thread) and through the async ORM, and reports what each saw, so a test can check that every
read and every write happened in the connection's own schema.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from django.db import ProgrammingError, connection
from django.urls import path

from demo.notes.models import Marker, Note
from omnitenant_async import get_current_state, tenant_context
from omnitenant_async.channels import TenantConsumerMixin, TenantMiddleware
from omnitenant_async.context import _current
from omnitenant_async.exceptions import NoTenantActive
from omnitenant_async.registry import registry

NOTE_PREFIX = "chtest-"


def context_tenant() -> str | None:
    state = get_current_state()
    return state.tenant_id if state is not None else None


def backend_pid() -> int:
    return int(connection.connection.info.backend_pid)


def sync_probe(tag: str) -> dict[str, Any]:
    """Write a note and read it back plus the marker, with the sync ORM."""
    note = Note.objects.create(text=f"{tag}-sync")
    return {
        "ctx_sync": context_tenant(),
        "marker_sync": Marker.objects.get().tenant_id,
        "note_sync": Note.objects.filter(pk=note.pk, text=note.text).exists(),
        "pid": backend_pid(),
        "thread": threading.current_thread().name,
    }


async def async_probe(tag: str) -> dict[str, Any]:
    """The sync probe through database_sync_to_async, then the same through the async ORM."""
    result: dict[str, Any] = await database_sync_to_async(sync_probe)(tag)
    note = await Note.objects.acreate(text=f"{tag}-async")
    result["marker_async"] = (await Marker.objects.aget()).tenant_id
    result["note_async"] = await Note.objects.filter(pk=note.pk, text=note.text).aexists()
    result["ctx"] = context_tenant()
    return result


def evil_sync(to: str) -> dict[str, Any]:
    """Switch the tenant *without* resetting it, as a careless handler would."""
    _current.set(registry.get_by_tenant_id(to))
    return {"ctx": context_tenant(), "marker": Marker.objects.get().tenant_id}


async def evil_async(to: str) -> dict[str, Any]:
    _current.set(await registry.aget_by_tenant_id(to))
    return {"ctx": context_tenant(), "marker": (await Marker.objects.aget()).tenant_id}


async def whoami() -> dict[str, Any]:
    return {"ctx": context_tenant(), "marker": (await Marker.objects.aget()).tenant_id}


async def handle(op: dict[str, Any]) -> dict[str, Any]:
    if op["op"] == "probe":
        return await async_probe(op["tag"])
    if op["op"] == "evil":
        return await evil_async(op["to"])
    if op["op"] == "evil-sync":
        result: dict[str, Any] = await database_sync_to_async(evil_sync)(op["to"])
        return result
    return await whoami()


def handle_sync(op: dict[str, Any]) -> dict[str, Any]:
    """The sync consumers' handler: ORM directly on the consumer's thread."""
    if op["op"] == "probe":
        result = sync_probe(op["tag"])
        result["ctx"] = context_tenant()
        return result
    if op["op"] in ("evil", "evil-sync"):
        return evil_sync(op["to"])
    return {"ctx": context_tenant(), "marker": Marker.objects.get().tenant_id}


class SyncProbe(TenantConsumerMixin, WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=json.dumps(handle_sync(json.loads(text_data or "{}"))))


class AsyncProbe(TenantConsumerMixin, AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=json.dumps(await handle(json.loads(text_data or "{}"))))


class JsonProbe(TenantConsumerMixin, AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        await self.send_json(await handle(content))


class PlainProbe(TenantConsumerMixin, AsyncConsumer):
    """The bare ASGI consumer: handlers named after the message types."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        reply = await handle(json.loads(message["text"]))
        await self.send({"type": "websocket.send", "text": json.dumps(reply)})

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer


class NaiveProbe(AsyncWebsocketConsumer):
    """No mixin: the tenant is whatever the middleware set once, for the connection's task."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=json.dumps(await handle(json.loads(text_data or "{}"))))


class NaiveConnectProbe(AsyncWebsocketConsumer):
    """No middleware, no mixin: the tenant activated by hand in connect(), never reset."""

    async def connect(self) -> None:
        tenant_id = self.scope["url_route"]["kwargs"]["tenant_id"]
        tenant_context(await registry.aget_by_tenant_id(tenant_id)).__enter__()
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=json.dumps(await handle(json.loads(text_data or "{}"))))


def _set_search_path(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'SET search_path TO "{schema}", public')


def _raw_marker() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tenant_id FROM notes_marker")
            marker = cursor.fetchone()[0]
    except ProgrammingError:  # this connection's search_path is public: no such table
        marker = None
    return {"marker": marker, "pid": backend_pid()}


def _orm_marker() -> str:
    return str(Marker.objects.get().tenant_id)


class NaiveSetProbe(AsyncWebsocketConsumer):
    """django-tenants' way, without the mixin: ``SET search_path`` on the connection in
    connect(), raw SQL later. The connection belongs to the shared DB thread, not to us."""

    async def connect(self) -> None:
        await database_sync_to_async(_set_search_path)(
            self.scope["url_route"]["kwargs"]["tenant_id"]
        )
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        reply = await database_sync_to_async(_raw_marker)()
        try:
            reply["orm"] = await database_sync_to_async(_orm_marker)()
        except NoTenantActive:
            reply["orm"] = "NoTenantActive"
        await self.send(text_data=json.dumps(reply))


class RoomConsumer(TenantConsumerMixin, AsyncJsonWebsocketConsumer):
    """Members of group "room" (the same name in every tenant)."""

    groups = ["room"]

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        if content["op"] == "say":
            await self.tenant_group_send("room", {"type": "room.message", "text": content["text"]})
        elif content["op"] == "join":
            await self.tenant_group_add(content["group"])
            await self.send_json({"joined": content["group"]})
        elif content["op"] == "leave":
            await self.tenant_group_discard(content["group"])
            await self.send_json({"left": content["group"]})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"text": event["text"], "tenant": event.get("tenant"), "ctx": context_tenant()}
        )


class SyncRoomConsumer(TenantConsumerMixin, JsonWebsocketConsumer):
    """The same in a sync consumer: the tenant_group_* methods are plain calls here."""

    groups = ["room"]

    def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        if content["op"] == "say":
            self.tenant_group_send("room", {"type": "room.message", "text": content["text"]})
        elif content["op"] == "join":
            self.tenant_group_add(content["group"])
            self.send_json({"joined": content["group"]})
        elif content["op"] == "leave":
            self.tenant_group_discard(content["group"])
            self.send_json({"left": content["group"]})

    def room_message(self, event: dict[str, Any]) -> None:
        self.send_json(
            {"text": event["text"], "tenant": event.get("tenant"), "ctx": context_tenant()}
        )


class ThreadedProbe(JsonProbe):
    """Its own thread count, whatever CHANNELS_DB_THREADS says."""

    db_threads = 2


class PublicRoomConsumer(RoomConsumer):
    allow_public = True


def probe_routes() -> list[Any]:
    return [
        path("ws/sync/", SyncProbe.as_asgi()),
        path("ws/async/", AsyncProbe.as_asgi()),
        path("ws/json/", JsonProbe.as_asgi()),
        path("ws/plain/", PlainProbe.as_asgi()),
        path("ws/naive/", NaiveProbe.as_asgi()),
        path("ws/threaded/", ThreadedProbe.as_asgi()),
        path("ws/room/", RoomConsumer.as_asgi()),
        path("ws/sync-room/", SyncRoomConsumer.as_asgi()),
        path("ws/public-room/", PublicRoomConsumer.as_asgi()),
    ]


def application() -> Any:
    """The app under test: the tenant middleware in front of a URLRouter."""
    from channels.routing import URLRouter

    return TenantMiddleware(URLRouter(probe_routes()))


def naive_application() -> Any:
    """No tenant middleware at all: the consumers pick the tenant from the URL themselves."""
    from channels.routing import URLRouter

    return URLRouter(
        [
            path("ws/naive-set/<str:tenant_id>/", NaiveSetProbe.as_asgi()),
            path("ws/naive-connect/<str:tenant_id>/", NaiveConnectProbe.as_asgi()),
        ]
    )
