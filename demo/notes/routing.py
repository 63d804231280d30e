"""WebSocket routes of the demo (served under the tenant middleware in ``demo/asgi.py``)."""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

from .consumers import FeedConsumer


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    """Any other path: refuse the handshake (URLRouter would raise, i.e. log a traceback)."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 4404})


websocket_urlpatterns = [
    path("ws/feed/", FeedConsumer.as_asgi()),
    re_path(r"", not_found),
]
