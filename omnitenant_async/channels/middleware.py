"""ASGI middleware putting the tenant in the scope, for Channels' ``ProtocolTypeRouter``.

The same resolvers as the HTTP middleware decide the tenant. ``QUERY_PARAM`` (off by default)
is a *fallback*: ``?<QUERY_PARAM>=<tenant_id>`` selects a tenant only when the resolver names
none (a public host), and is refused when it contradicts the tenant the resolver found.
"""

from __future__ import annotations

from typing import Any, cast

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError

from ..conf import get_config
from ..context import TenantState, tenant_context
from ..exceptions import InvalidTenantInput, TenantNotFound
from ..invalidation import ensure_listener
from ..middleware import describe
from ..registry import registry
from ..resolvers import BaseTenantResolver, QueryParamTenantResolver, RequestInfo, get_resolver
from ..validators import is_dns_label
from .codes import CLOSE_INVALID_TENANT, CLOSE_UNAVAILABLE, CLOSE_UNKNOWN_TENANT, logger, reject


class TenantMiddleware:
    """Set ``scope["tenant"]`` (model instance, ``None`` on a public host) and
    ``scope["tenant_state"]``, and run the inner application inside the tenant.

    Unknown tenants are refused with :data:`CLOSE_UNKNOWN_TENANT` (HTTP 404), an unreachable
    database with :data:`CLOSE_UNAVAILABLE` (HTTP 503, ``Retry-After``), malformed input
    and hosts outside ``ALLOWED_HOSTS`` (read as Django's ``get_host()`` does, honouring
    ``USE_X_FORWARDED_HOST``) with :data:`CLOSE_INVALID_TENANT` (HTTP 400). Each connection
    gets its own copy of the tenant instance. Other scope types (lifespan) pass through.
    ``http_denial=True`` refuses WebSockets with the HTTP status instead of a close, where the
    server supports it (off by default: uvicorn's default WebSocket protocol logs an error after
    each denial response).
    """

    def __init__(self, inner: ASGI3Application, *, http_denial: bool = False) -> None:
        self.inner: Any = inner  # Channels' routers and consumers are untyped
        self.http_denial = http_denial

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.inner(scope, receive, send)
            return
        ensure_listener()
        resolver = get_resolver()
        try:
            info = RequestInfo.from_scope(scope)
            state = (await aresolve(resolver, info)).with_own_tenant()
        except TenantNotFound:
            await reject(scope, receive, send, CLOSE_UNKNOWN_TENANT, http_denial=self.http_denial)
            return
        except (InvalidTenantInput, DisallowedHost):
            await reject(scope, receive, send, CLOSE_INVALID_TENANT, http_denial=self.http_denial)
            return
        except (OperationalError, InterfaceError) as err:  # nothing cached: retried next time
            logger.warning("Database unavailable, refusing the connection: %s", describe(err))
            await reject(scope, receive, send, CLOSE_UNAVAILABLE, http_denial=self.http_denial)
            return
        inner_scope = cast(dict[str, Any], dict(scope))
        inner_scope["tenant"] = state.tenant
        inner_scope["tenant_state"] = state
        prefix = resolver.path_prefix(info)
        if prefix:  # PathTenantResolver: routers then match the path after /t/<id>
            inner_scope["root_path"] = inner_scope.get("root_path", "") + prefix
        with tenant_context(state):
            await self.inner(inner_scope, receive, send)


async def aresolve(resolver: BaseTenantResolver, info: RequestInfo) -> TenantState:
    """The resolver's answer, then the ``QUERY_PARAM`` fallback."""
    state = await resolver.aresolve(info)
    name = get_config().QUERY_PARAM
    if not name or isinstance(resolver, QueryParamTenantResolver):
        return state
    value = _query_value(info, name)
    if value is None:
        return state
    if state.is_public:
        return await registry.aget_by_tenant_id(value)
    if value != state.tenant_id:
        raise InvalidTenantInput(f"The {name!r} query parameter names another tenant.")
    return state


def _query_value(info: RequestInfo, name: str) -> str | None:
    value = info.query_param(name)
    if value is not None and not is_dns_label(value):
        raise InvalidTenantInput(f"The {name!r} query parameter is not a valid tenant id.")
    return value


def TenantAuthMiddlewareStack(inner: ASGI3Application) -> TenantMiddleware:
    """Tenant first, then Channels' ``AuthMiddlewareStack``: sessions and users are looked up
    in the tenant's schema."""
    from channels.auth import AuthMiddlewareStack  # imports auth models: needs apps ready

    return TenantMiddleware(AuthMiddlewareStack(inner))
