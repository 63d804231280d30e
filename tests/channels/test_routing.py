"""``TenantURLRouter``: public, tenant and per-tenant WebSocket routes, under real concurrency."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured

from omnitenant_async import TenantState, use_master_db
from omnitenant_async.channels import CLOSE_NO_TENANT, TenantMiddleware, TenantURLRouter
from omnitenant_async.channels.routing import CLOSE_ROUTING_BROKEN
from omnitenant_async.registry import registry
from omnitenant_async.utils import get_tenant_model

from ..asgi_client import communicator
from . import ws_routes
from .harness import ws_scope

OWN = "tests.channels.ws_routes"

pytestmark = pytest.mark.usefixtures("tenants")


def app(public: bool = True) -> TenantMiddleware:
    return TenantMiddleware(
        TenantURLRouter(
            ws_routes.tenant_urlpatterns,
            public=ws_routes.public_urlpatterns if public else None,
        )
    )


async def talk(application: Any, path: str, host: str) -> tuple[str, Any]:
    """``("text", message)`` from an accepted socket, or ``("close", code)`` if refused."""
    comm = communicator(application, ws_scope(path, host))
    await comm.send_input({"type": "websocket.connect"})
    first = await comm.receive_output(5)
    if first["type"] == "websocket.close":
        await comm.wait(5)
        return ("close", first["code"])
    assert first["type"] == "websocket.accept", first
    message = await comm.receive_output(5)
    assert (await comm.receive_output(5))["type"] == "websocket.close"
    await comm.wait(5)
    return ("text", message["text"])


def set_ws_urlconf(tenant_id: str, module: str | None) -> None:
    with use_master_db():
        tenant = get_tenant_model().objects.get(tenant_id=tenant_id)
        config = dict(tenant.config or {})
        if module is None:
            config.pop("ws_urlconf", None)
        else:
            config["ws_urlconf"] = module
        tenant.config = config
        tenant.save()
    registry.clear()


@pytest.fixture
def own_routes(tenant_ids: list[str]) -> Iterator[str]:
    """The first channel tenant with its own routes (config["ws_urlconf"]), reset after."""
    tenant_id = tenant_ids[0]
    set_ws_urlconf(tenant_id, OWN)
    yield tenant_id
    set_ws_urlconf(tenant_id, None)


@pytest.mark.asyncio
async def test_public_tenant_and_own_routes_interleaved(
    tenant_ids: list[str], own_routes: str
) -> None:
    """300 interleaved connections: each is routed by its own host, never by another's."""
    application = app()
    hosts = ["localhost"] + [f"{t}.localhost" for t in tenant_ids]
    jobs = [random.choice(hosts) for _ in range(300)]

    async def one(host: str) -> tuple[str, tuple[str, Any]]:
        return host, await talk(application, "/ws/who/", host)

    for host, outcome in await asyncio.gather(*(one(h) for h in jobs)):
        tenant = host.split(".")[0]
        if host == "localhost":
            assert outcome == ("text", "public -")
        elif tenant == own_routes:
            assert outcome == ("text", f"own {tenant}")
        else:
            assert outcome == ("text", f"tenant {tenant}")
    # Routes only the tenant with its own module has: another tenant does not reach them.
    assert await talk(application, "/ws/extra/", f"{own_routes}.localhost") == (
        "text",
        f"extra {own_routes}",
    )
    with pytest.raises(ValueError, match="No route found"):
        await talk(application, "/ws/extra/", f"{tenant_ids[1]}.localhost")


@pytest.mark.asyncio
async def test_no_public_routes_refuses_the_public_host(tenant_ids: list[str]) -> None:
    application = app(public=False)
    assert await talk(application, "/ws/who/", "localhost") == ("close", CLOSE_NO_TENANT)
    host = f"{tenant_ids[1]}.localhost"
    assert await talk(application, "/ws/who/", host) == ("text", f"tenant {tenant_ids[1]}")


@pytest.mark.asyncio
async def test_a_broken_ws_urlconf_closes_with_a_clear_log(
    tenant_ids: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    tenant_id = tenant_ids[2]
    await sync_to_async(set_ws_urlconf)(tenant_id, "tests.channels.no_such_module")
    try:
        with caplog.at_level(logging.ERROR, logger="omnitenant_async.channels"):
            outcome = await talk(app(), "/ws/who/", f"{tenant_id}.localhost")
        assert outcome == ("close", CLOSE_ROUTING_BROKEN)
        assert f"Tenant {tenant_id!r}: config['ws_urlconf']" in caplog.text
        # The other tenants are unaffected.
        other = f"{tenant_ids[3]}.localhost"
        assert await talk(app(), "/ws/who/", other) == ("text", f"tenant {tenant_ids[3]}")
    finally:
        await sync_to_async(set_ws_urlconf)(tenant_id, None)


def test_router_for_states_without_a_tenant() -> None:
    router = TenantURLRouter(ws_routes.tenant_urlpatterns)
    assert router.router_for(None) is None
    assert router.router_for(TenantState(None, schema_name="explicit")) is None
    assert router.router_for(TenantState("t99")) is router._tenant


@pytest.mark.asyncio
async def test_without_the_middleware_it_says_what_to_do() -> None:
    router = TenantURLRouter(ws_routes.tenant_urlpatterns)
    comm = communicator(router, ws_scope("/ws/who/", "localhost"))
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(ImproperlyConfigured, match="TenantMiddleware"):
        await comm.wait(5)
