"""The live feed: each tenant's browsers see that tenant's new notes, and no one else's."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from omnitenant_async.channels import TenantConsumerMixin

from .models import Marker, Note

FEED_GROUP = "feed"


def note_event(note: Note) -> dict[str, Any]:
    """The group event announcing ``note`` (handled by ``FeedConsumer.feed_note``)."""
    return {"type": "feed.note", "id": note.pk, "text": note.text}


class FeedConsumer(TenantConsumerMixin, AsyncJsonWebsocketConsumer):
    """``/ws/feed/``: the latest notes on connect, then every new note of the tenant."""

    groups = [FEED_GROUP]

    async def connect(self) -> None:
        await self.accept()
        notes = [{"id": n.pk, "text": n.text} async for n in Note.objects.order_by("-id")[:20]]
        await self.send_json(
            {"type": "hello", "tenant": self.tenant.tenant_id, "name": self.tenant.name,
             "notes": notes}
        )  # fmt: skip

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or "")
        except ValueError:
            content = None
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "error": "send a JSON object"})
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        action = content.get("action")
        if action == "ping":  # answers from the tenant's own schema
            marker = await Marker.objects.afirst()  # None in a tenant made by `createtenant`
            await self.send_json({"type": "pong", "tenant": marker and marker.tenant_id})
        elif action == "post":
            text = content.get("text")
            if not isinstance(text, str) or not text.strip():
                await self.send_json({"type": "error", "error": '"text" must be a string'})
                return
            note = await Note.objects.acreate(text=text[:500])
            await self.tenant_group_send(FEED_GROUP, note_event(note))
        else:
            await self.send_json({"type": "error", "error": "unknown action"})

    async def feed_note(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "note", "id": event["id"], "text": event["text"], "tenant": event["tenant"]}
        )
