"""A consumer's sends after its own close are dropped, never a server error.

A group event that arrives between a consumer's ``close()`` and the client's disconnect used to
reach the server as ``websocket.send`` after ``websocket.close``: uvicorn raises
``RuntimeError`` and logs a traceback (seen behind PgBouncer with the lowest supported uvicorn).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer

from omnitenant_async.channels import TenantConsumerMixin
from omnitenant_async.context import TenantState

pytestmark = pytest.mark.usefixtures("tenants")


class Closer(TenantConsumerMixin, AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.close()

    async def late_note(self, event: dict[str, Any]) -> None:
        await self.send(text_data="too late")


class StrictServer:
    """The ASGI side as uvicorn does it: nothing may follow a websocket.close."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        if any(m["type"] == "websocket.close" for m in self.sent):
            raise RuntimeError(f"Unexpected ASGI message {message['type']!r} after close")
        self.sent.append(message)


@pytest.mark.asyncio
async def test_a_group_event_after_close_is_dropped(tenants: dict[str, Any]) -> None:
    state = TenantState.from_tenant(tenants["t01"])
    scope: dict[str, Any] = {
        "type": "websocket", "path": "/ws/", "headers": [], "query_string": b"",
        "tenant": state.tenant, "tenant_state": state,
    }  # fmt: skip
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "close please"},
        {"type": "late.note"},  # what a group_send delivers, after the consumer closed
        {"type": "websocket.disconnect", "code": 1000},
    ):
        incoming.put_nowait(message)
    server = StrictServer()
    await asyncio.wait_for(Closer.as_asgi()(scope, incoming.get, server.send), timeout=10)
    assert [m["type"] for m in server.sent] == ["websocket.accept", "websocket.close"]


class GoneClientServer(StrictServer):
    """uvicorn once the client has gone: any send raises as it does."""

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            raise RuntimeError(
                "Unexpected ASGI message 'websocket.send', after sending 'websocket.close' or "
                "response already completed."
            )
        self.sent.append(message)


@pytest.mark.asyncio
async def test_a_group_event_after_the_client_left_is_dropped(tenants: dict[str, Any]) -> None:
    state = TenantState.from_tenant(tenants["t01"])
    scope: dict[str, Any] = {
        "type": "websocket", "path": "/ws/", "headers": [], "query_string": b"",
        "tenant": state.tenant, "tenant_state": state,
    }  # fmt: skip
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in (
        {"type": "websocket.connect"},
        {"type": "late.note"},  # the client is already gone when it is delivered
        {"type": "late.note"},
        {"type": "websocket.disconnect", "code": 1001},
    ):
        incoming.put_nowait(message)
    server = GoneClientServer()
    await asyncio.wait_for(Closer.as_asgi()(scope, incoming.get, server.send), timeout=10)
    assert [m["type"] for m in server.sent] == ["websocket.accept"]
