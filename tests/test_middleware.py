"""TenantMiddleware through Django's handlers (sync Client and ASGI AsyncClient)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from omnitenant_async.registry import registry

from .asgi_client import request

pytestmark = pytest.mark.usefixtures("tenants")

BAD_HOSTS = ["a..b", "-x.localhost", "x" * 300, "t01.localhost:99999", "t01.localhost:abc", "a b"]


def config(resolver: str) -> dict[str, object]:
    from django.conf import settings

    return {
        **settings.OMNITENANT_CONFIG,
        "TENANT_RESOLVER": f"omnitenant_async.resolvers.{resolver}",
    }


def test_sync_stack_serves_each_tenant() -> None:
    client = Client()
    for tenant_id in ("t00", "t01", "t02"):
        body = client.get("/whoami-sync/", headers={"host": f"{tenant_id}.localhost"}).json()
        assert body == {"tenant": tenant_id, "context": tenant_id, "marker": tenant_id, "notes": 0}


def test_warm_request_makes_no_resolution_query() -> None:
    """The view makes 2 queries; a cold request adds exactly one lookup, a warm one none."""
    client = Client()
    registry.clear()
    with CaptureQueriesContext(connection) as cold:
        assert client.get("/whoami-sync/", headers={"host": "t12.localhost"}).status_code == 200
    with CaptureQueriesContext(connection) as warm:
        assert client.get("/whoami-sync/", headers={"host": "t12.localhost"}).status_code == 200
    assert len(cold.captured_queries) == 3
    assert len(warm.captured_queries) == 2
    assert not any("customers_" in q["sql"] for q in warm.captured_queries)
    assert not any("search_path" in q["sql"] for q in warm.captured_queries)


@pytest.mark.asyncio
async def test_async_stack_serves_each_tenant_and_public() -> None:
    for tenant_id in ("t03", "t04"):
        response = await request("/whoami/", f"{tenant_id}.localhost:8000")
        assert response.json()["marker"] == tenant_id
    public = await request("/whoami/", "localhost")
    assert public.json() == {"tenant": None, "marker": None}


@pytest.mark.asyncio
async def test_unknown_host_404_and_malformed_400_never_500() -> None:
    assert (await request("/whoami/", "nobody.localhost")).status == 404
    for host in [*BAD_HOSTS, "t01.localhost,t02.localhost"]:
        assert (await request("/whoami/", host)).status == 400, host
    # No Host header: Django falls back to the server name (127.0.0.1 here, a PUBLIC_HOST).
    assert (await request("/whoami/", None)).json() == {"tenant": None, "marker": None}


def test_sync_stack_unknown_404_malformed_400() -> None:
    sync_client = Client(raise_request_exception=False)
    for host in BAD_HOSTS:
        assert sync_client.get("/whoami-sync/", headers={"host": host}).status_code == 400, host
    assert sync_client.get("/whoami-sync/", headers={"host": "ghost.localhost"}).status_code == 404


@pytest.mark.asyncio
async def test_header_resolver_varies_and_validates() -> None:
    with override_settings(OMNITENANT_CONFIG=config("HeaderTenantResolver")):
        response = await request("/whoami/", "api.test", headers={"x-tenant-id": "t05"})
        assert response.json()["marker"] == "t05"
        assert "X-Tenant-ID" in response.headers["vary"]
        bad = await request("/whoami/", "api.test", headers={"x-tenant-id": "../t05"})
        assert bad.status == 400
        assert (await request("/whoami/", "api.test")).status == 400
        unknown = await request("/whoami/", "api.test", headers={"x-tenant-id": "zz"})
        assert unknown.status == 404


@pytest.mark.asyncio
async def test_path_resolver_strips_prefix() -> None:
    with override_settings(OMNITENANT_CONFIG=config("PathTenantResolver")):
        response = await request("/t/t06/whoami/", "app.test")
        assert response.status == 200
        assert response.json()["marker"] == "t06"
        assert (await request("/t/Bad!/whoami/", "app.test")).status == 400
        assert (await request("/t/zz/whoami/", "app.test")).status == 404
        public = await request("/whoami/", "app.test")
        assert public.json() == {"tenant": None, "marker": None}


@pytest.mark.asyncio
async def test_subdomain_resolver_through_middleware() -> None:
    with override_settings(OMNITENANT_CONFIG=config("SubdomainTenantResolver")):
        response = await request("/whoami/", "www.t07.localhost:8000")
        assert response.json()["marker"] == "t07"
        assert (await request("/whoami/", "t07.evil.com")).status == 404


def test_request_tenant_attribute_and_reset_after_response() -> None:
    from omnitenant_async import get_current_state

    response = Client().get("/whoami-sync/", headers={"host": "t08.localhost"})
    assert response.wsgi_request.tenant.tenant_id == "t08"  # type: ignore[attr-defined]  # set by the middleware
    assert get_current_state() is None
