"""The ASGI app driven by ``bench/bench_channels.py`` (demo settings, its own database).

Echo: the same consumer without and with ``TenantConsumerMixin``, both behind the tenant
middleware (it runs once per connection), plus a bare one with neither for reference.
DB: a handler that reads the tenant's marker and inserts a note, on Channels' one shared thread
(``db_threads = 0``) or spread over ``OMNITENANT_BENCH_DB_THREADS`` threads.
"""

from __future__ import annotations

import os

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, WebSocketScope
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
get_asgi_application()  # sets Django up before the imports below

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from demo.notes.models import Marker, Note  # noqa: E402
from omnitenant_async.channels import TenantConsumerMixin, TenantMiddleware  # noqa: E402


# Channels ships no type hints, so its consumer classes are Any to mypy.
class PlainEcho(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class TenantEcho(TenantConsumerMixin, PlainEcho):
    pass


def db_work(text: str) -> str:
    """One read and one write in the tenant's schema, as a chat handler would."""
    marker = Marker.objects.get().tenant_id
    Note.objects.create(text=text[:100])
    return str(marker)


class SharedThreadDb(TenantConsumerMixin, AsyncWebsocketConsumer):  # type: ignore[misc]
    db_threads = 0

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=await database_sync_to_async(db_work)(text_data or ""))


class ThreadedDb(SharedThreadDb):
    db_threads = int(os.environ.get("OMNITENANT_BENCH_DB_THREADS", "8"))


tenant_app = TenantMiddleware(
    URLRouter(
        [
            path("ws/plain/", PlainEcho.as_asgi()),
            path("ws/mixin/", TenantEcho.as_asgi()),
            path("ws/db-shared/", SharedThreadDb.as_asgi()),
            path("ws/db-threads/", ThreadedDb.as_asgi()),
        ]
    )
)
bare_app = PlainEcho.as_asgi()  # no middleware, no mixin: Channels alone


async def websocket(
    scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    app = bare_app if scope["path"] == "/bare/" else tenant_app
    await app(scope, receive, send)


application = ProtocolTypeRouter({"websocket": websocket})
