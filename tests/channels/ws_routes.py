"""WebSocket routes for tests/channels/test_routing.py: each answer says which set served it."""

from __future__ import annotations

from typing import Any

from django.urls import path

from omnitenant_async import get_current_state


def answering(label: str) -> Any:
    """A tiny WebSocket app: accept, send ``<label> <tenant id or ->``, then close."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        state = get_current_state()
        tenant = state.tenant_id if state is not None and state.tenant_id else "-"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"{label} {tenant}"})
        await send({"type": "websocket.close", "code": 1000})

    return app


public_urlpatterns = [path("ws/who/", answering("public"))]
tenant_urlpatterns = [path("ws/who/", answering("tenant"))]
# A tenant whose config names this module gets these (config["ws_urlconf"]).
websocket_urlpatterns = [path("ws/who/", answering("own")), path("ws/extra/", answering("extra"))]
