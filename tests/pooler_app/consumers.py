"""A consumer that answers each message with the marker row as each of its queries saw it."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connection, transaction

from demo.notes.models import Marker
from omnitenant_async.channels import TenantConsumerMixin

from .urls import MARKER_SQL


def sync_seen() -> list[Any]:
    """Autocommit reads, then an atomic block, on Channels' database thread."""
    seen = [Marker.objects.get().tenant_id]
    with connection.cursor() as cursor:
        cursor.execute(MARKER_SQL)
        seen.append(cursor.fetchone()[0])
    with transaction.atomic():
        seen.append(Marker.objects.get().tenant_id)
        seen.append(Marker.objects.values_list("tenant_id", flat=True).get())
    seen.append(Marker.objects.get().tenant_id)
    return seen


class ProbeConsumer(TenantConsumerMixin, AsyncJsonWebsocketConsumer):
    """``/ws/probe/``: every message gets ``{"tenant": ..., "seen": [...]}``."""

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        seen = [(await Marker.objects.aget()).tenant_id]
        await asyncio.sleep(0.001)
        seen += await database_sync_to_async(sync_seen)()
        seen.append((await Marker.objects.aget()).tenant_id)
        await self.send_json({"tenant": self.tenant.tenant_id, "seen": seen})
