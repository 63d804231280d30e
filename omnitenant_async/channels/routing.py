"""Per-host WebSocket routing: the public host, tenants, and one tenant may each have routes.

The Channels counterpart of the HTTP URLconf switch (``omnitenant_async.urlconf``). Placed
under :class:`~omnitenant_async.channels.TenantMiddleware`, :class:`TenantURLRouter` routes a
connection with the public routes when it has no tenant, with the tenant routes otherwise, and
with a tenant's own when its ``config["ws_urlconf"]`` names a module (its
``websocket_urlpatterns``, like ``ROOT_URLCONF``'s ``urlpatterns``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from channels.routing import URLRouter
from django.core.exceptions import ImproperlyConfigured

from ..context import TenantState
from .codes import CLOSE_NO_TENANT, logger, reject

__all__ = ["CLOSE_ROUTING_BROKEN", "TenantURLRouter"]

#: The tenant's ``config["ws_urlconf"]`` cannot be imported or has no
#: ``websocket_urlpatterns``: RFC 6455's "internal error"; the log names the tenant.
CLOSE_ROUTING_BROKEN = 1011


class TenantURLRouter:
    """``URLRouter`` per tenant: ``TenantURLRouter(tenant_routes, public=public_routes)``.

    ``public=None`` (the default) refuses connections without a tenant with
    :data:`~omnitenant_async.channels.CLOSE_NO_TENANT`. Routers for tenants' own modules are
    built once per module path and kept.
    """

    def __init__(self, routes: Sequence[Any], *, public: Sequence[Any] | None = None) -> None:
        self._tenant = URLRouter(list(routes))
        self._public = URLRouter(list(public)) if public is not None else None
        self._own: dict[str, Any] = {}
        self._lock = threading.Lock()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        state: TenantState | None = scope.get("tenant_state")  # type: ignore[assignment]
        if state is None and "tenant_state" not in scope:
            raise ImproperlyConfigured(
                "TenantURLRouter needs the tenant in the scope: wrap it in "
                "omnitenant_async.channels.TenantMiddleware (or TenantAuthMiddlewareStack)."
            )
        try:
            router = self.router_for(state)
        except ImproperlyConfigured as err:
            logger.error("Refused a %s connection: %s", scope["type"], err)
            await _close(scope, receive, send, CLOSE_ROUTING_BROKEN)
            return
        if router is None:
            await reject(scope, receive, send, CLOSE_NO_TENANT)
            return
        await router(scope, receive, send)

    def router_for(self, state: TenantState | None) -> Any:
        """The router serving ``state``: the tenant's own, the tenants', the public or None."""
        if state is None or state.tenant_id is None:
            return self._public
        own = getattr(state.tenant, "config", None)
        module = own.get("ws_urlconf") if isinstance(own, dict) else None
        if not module:
            return self._tenant
        router = self._own.get(module)
        if router is None:
            with self._lock:
                router = self._own.get(module) or self._own.setdefault(
                    module, URLRouter(_patterns(module, state.tenant_id))
                )
        return router


def _patterns(module: str, tenant_id: str) -> list[Any]:
    try:
        patterns = import_module(module).websocket_urlpatterns
    except (ImportError, AttributeError) as err:
        raise ImproperlyConfigured(
            f"Tenant {tenant_id!r}: config['ws_urlconf'] = {module!r} must name an importable "
            f"module with websocket_urlpatterns ({type(err).__name__}: {err})."
        ) from None
    return list(patterns)


async def _close(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable, code: int
) -> None:
    """Close a WebSocket handshake (or answer a plain HTTP request) with ``code``."""
    if scope["type"] == "websocket":
        if (await receive())["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": code, "reason": ""})
        return
    await send({"type": "http.response.start", "status": 500, "headers": [], "trailers": False})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
