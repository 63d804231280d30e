"""WebSocket close codes of the tenant middleware and mixin, and how a connection is refused.

Codes 4000-4999 are free for applications (RFC 6455 §7.4.2); ours mirror the HTTP status:
4400, 4403, 4404, 4409 and 4503.
A connection is refused *before* ``websocket.accept``: servers (uvicorn, daphne) answer such a
handshake with ``HTTP 403``, and in-process clients such as ``WebsocketCommunicator`` see the
close code. With ``http_denial=True`` the HTTP status itself is sent instead, through the ASGI
denial response extension when the server offers it.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from ..conf import get_config

logger = logging.getLogger("omnitenant_async.channels")

#: The host, header, path or query parameter cannot name a tenant at all (HTTP 400).
CLOSE_INVALID_TENANT = 4400
#: A consumer with :class:`TenantConsumerMixin` was reached without a tenant (HTTP 403).
CLOSE_NO_TENANT = 4403
#: No tenant matches the host or tenant id (HTTP 404); also closes a live connection whose
#: tenant (or domain) was deleted.
CLOSE_UNKNOWN_TENANT = 4404
#: A live connection's host now names another tenant, or its tenant's isolation or database
#: changed: reconnect to get the new one (HTTP 409).
CLOSE_TENANT_CHANGED = 4409
#: The database cannot be reached right now; retry in a few seconds (HTTP 503).
CLOSE_UNAVAILABLE = 4503

_REFUSALS: dict[int, tuple[int, str]] = {
    CLOSE_INVALID_TENANT: (400, "Malformed tenant reference."),
    CLOSE_NO_TENANT: (403, "No tenant for this connection."),
    CLOSE_UNKNOWN_TENANT: (404, "Unknown tenant."),
    CLOSE_UNAVAILABLE: (503, "Database unavailable; retry shortly."),
}


async def reject(
    scope: Any,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    code: int,
    *,
    http_denial: bool = False,
) -> None:
    """Refuse a WebSocket before accept, or answer an HTTP request with a plain status."""
    status, text = _REFUSALS[code]
    logger.debug("Refused %s connection (%s): %s", scope["type"], code, text)
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if status == 503:
        headers.append((b"retry-after", str(get_config().RETRY_AFTER).encode()))
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers,
                    "trailers": False})  # fmt: skip
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    if scope["type"] != "websocket":
        raise ValueError(
            f"Cannot refuse a {scope['type']!r} connection: put the tenant in the scope "
            "with omnitenant_async.channels.TenantMiddleware."
        )
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client is already gone
    if http_denial and "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "websocket.close", "code": code, "reason": text})
