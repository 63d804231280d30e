"""Each request and connection owns its tenant instance; hosts follow Django's ``get_host()``.

The registry caches one tenant instance per key: a view that changed ``request.tenant`` used to
change it for every concurrent request. And the host was read from ``HTTP_HOST`` directly, so
``ALLOWED_HOSTS`` was not enforced before the lookup and ``USE_X_FORWARDED_HOST`` was ignored.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from omnitenant_async import get_current_tenant
from omnitenant_async.channels import CLOSE_INVALID_TENANT
from omnitenant_async.channels import TenantMiddleware as ChannelsTenantMiddleware
from omnitenant_async.middleware import TenantMiddleware
from omnitenant_async.models import BaseTenant
from omnitenant_async.registry import registry
from omnitenant_async.resolvers import RequestInfo

from .asgi_client import request

pytestmark = pytest.mark.usefixtures("tenants")

factory = RequestFactory()


async def cached_tenant(host: str) -> BaseTenant:
    """The registry's cached tenant instance for ``host``."""
    tenant = (await registry.aget_by_domain(host)).tenant
    assert isinstance(tenant, BaseTenant), tenant
    return tenant


def seen(request: HttpRequest, tenant: Any) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "config": dict(tenant.config),
        "same": get_current_tenant() is tenant,
    }


@pytest.mark.asyncio
async def test_a_view_mutating_request_tenant_affects_no_concurrent_request() -> None:
    original = await cached_tenant("t05.localhost")
    name, config = original.name, dict(original.config)

    async def view(request: HttpRequest) -> HttpResponse:
        i = int(request.GET["i"])
        if i % 2:  # the mutating half
            request.tenant.name = f"mutated-{i}"  # type: ignore[attr-defined]  # set by the middleware
            request.tenant.config["poison"] = i  # type: ignore[attr-defined]  # set by the middleware
        await asyncio.sleep(0.001 * (i % 5))
        return JsonResponse(seen(request, request.tenant))  # type: ignore[attr-defined]  # set by the middleware

    middleware = TenantMiddleware(view)
    requests = [factory.get(f"/?i={i}", headers={"host": "t05.localhost"}) for i in range(300)]
    responses = await asyncio.gather(*(middleware(r) for r in requests))
    for i, response in enumerate(responses):
        body = json.loads(response.content)
        assert body["same"] is True
        if i % 2:
            assert body == {"name": f"mutated-{i}", "config": {**config, "poison": i}, "same": True}
        else:
            assert body == {"name": name, "config": config, "same": True}, i
    cached = await cached_tenant("t05.localhost")
    assert (cached.name, cached.config) == (name, config)


def test_sync_views_in_threads_mutating_request_tenant_stay_apart() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        i = int(request.GET["i"])
        request.tenant.config.setdefault("writer", i)  # type: ignore[attr-defined]  # set by the middleware
        return JsonResponse({"writer": request.tenant.config["writer"]})  # type: ignore[attr-defined]  # set by the middleware

    middleware = TenantMiddleware(view)

    def call(i: int) -> int:
        response = middleware(factory.get(f"/?i={i}", headers={"host": "t06.localhost"}))
        return int(json.loads(response.content)["writer"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, range(200))) == list(range(200))


@pytest.mark.asyncio
async def test_channels_connections_own_their_tenant_instance() -> None:
    seen_names: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        tenant = scope["tenant"]
        seen_names.append(tenant.name)
        tenant.name = "mutated"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = ChannelsTenantMiddleware(inner)
    for _ in range(5):
        await run_scope(app, scope_for("t07.localhost"))
    name = (await cached_tenant("t07.localhost")).name
    assert seen_names == [name] * 5 and name != "mutated"


def scope_for(host: str, extra: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http", "path": "/", "query_string": b"", "method": "GET",
        "headers": [(b"host", host.encode()), *(extra or [])], "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def run_scope(
    app: Any, scope: dict[str, Any], event: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The messages ``app`` sends; ``receive()`` returns ``event`` (an empty HTTP request)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return event or {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_disallowed_host_is_400_before_any_lookup() -> None:
    registry.clear()
    client = Client(raise_request_exception=False)
    with override_settings(ALLOWED_HOSTS=[".example.com", "t01.localhost"]):
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/whoami-sync/", headers={"host": "t02.localhost"})
        assert response.status_code == 400
        assert queries.captured_queries == []  # no lookup, no query at all
        response = client.get("/whoami-sync/", headers={"host": "t01.localhost"})
        assert response.json()["marker"] == "t01"


@pytest.mark.asyncio
async def test_disallowed_host_is_400_under_asgi() -> None:
    with override_settings(ALLOWED_HOSTS=["t01.localhost"]):
        assert (await request("/whoami/", "t02.localhost")).status == 400
        assert (await request("/whoami/", "t01.localhost")).json()["marker"] == "t01"


@pytest.mark.asyncio
async def test_forwarded_host_is_used_only_when_django_says_so() -> None:
    headers = {"x-forwarded-host": "t08.localhost"}
    with override_settings(USE_X_FORWARDED_HOST=True):
        assert (await request("/whoami/", "proxy.localhost", headers=headers)).json()[
            "marker"
        ] == "t08"
    assert (await request("/whoami/", "proxy.localhost", headers=headers)).status == 404


def test_scope_host_follows_get_host_rules() -> None:
    forwarded = [(b"x-forwarded-host", b"t09.localhost")]
    assert RequestInfo.from_scope(scope_for("t01.localhost", forwarded)).host == "t01.localhost"
    with override_settings(USE_X_FORWARDED_HOST=True):
        info = RequestInfo.from_scope(scope_for("proxy.localhost", forwarded))
        assert info.host == "t09.localhost"
    with override_settings(ALLOWED_HOSTS=["t01.localhost"]):
        with pytest.raises(DisallowedHost):
            RequestInfo.from_scope(scope_for("t02.localhost"))
        assert RequestInfo.from_scope(scope_for("t01.localhost:8000")).host == "t01.localhost:8000"
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert RequestInfo.from_scope(scope_for("t01.localhost")).host == "t01.localhost"
        with pytest.raises(DisallowedHost):
            RequestInfo.from_scope(scope_for("evil.example"))


@pytest.mark.asyncio
async def test_channels_disallowed_host_is_refused_as_invalid() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be reached")

    app = ChannelsTenantMiddleware(inner)
    ws_scope = {**scope_for("t02.localhost"), "type": "websocket"}
    with override_settings(ALLOWED_HOSTS=["t01.localhost"]):
        sent = await run_scope(app, ws_scope, {"type": "websocket.connect"})
    assert [(m["type"], m["code"]) for m in sent] == [("websocket.close", CLOSE_INVALID_TENANT)]
