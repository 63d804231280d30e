"""omnitenant_async.testing: real tenants for users' tests, and clients bound to a tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import AsyncRequestFactory

from demo.notes.models import Marker, Note
from omnitenant_async import get_current_state, get_current_tenant, use_master_db
from omnitenant_async.exceptions import TenantAlreadyExists
from omnitenant_async.models import BaseTenant
from omnitenant_async.testing import (
    acreate_test_tenant,
    adrop_test_tenant,
    async_tenant_client,
    create_test_tenant,
    drop_test_tenant,
    tenant_client,
)
from omnitenant_async.utils import get_domain_model, get_tenant_model

IDS = ("ops-h1", "ops-h2", "ops-h3", "ops-left")
pytestmark = pytest.mark.usefixtures("django_db")


@pytest.fixture(autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    for tenant_id in IDS:
        drop_test_tenant(tenant_id)


def schema_exists(schema: str) -> bool:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def test_create_and_drop_test_tenant() -> None:
    tenant = create_test_tenant("ops-h1", ["ops-h1.localhost", "alias.ops-h1.localhost"])
    assert schema_exists("ops-h1")
    with use_master_db():
        domains = dict(
            get_domain_model().objects.filter(tenant=tenant).values_list("domain", "is_primary")
        )
    assert domains == {"ops-h1.localhost": True, "alias.ops-h1.localhost": False}
    with pytest.raises(TenantAlreadyExists):
        create_test_tenant("ops-h1")

    drop_test_tenant(tenant)
    assert not schema_exists("ops-h1")
    with use_master_db():
        assert not get_tenant_model().objects.filter(tenant_id="ops-h1").exists()
        assert not get_domain_model().objects.filter(domain="ops-h1.localhost").exists()
    drop_test_tenant(tenant)  # already gone: no error
    drop_test_tenant("ops-h1")


def test_drop_test_tenant_removes_a_leftover_schema_by_id() -> None:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "ops-left"')
    drop_test_tenant("ops-left")
    assert not schema_exists("ops-left")


def test_tenant_client_activates_the_tenant_and_sends_its_host() -> None:
    tenant = create_test_tenant("ops-h1", ["ops-h1.localhost"])
    other = create_test_tenant("ops-h2", ["ops-h2.localhost"])
    with tenant_client(tenant) as client:
        current = get_current_tenant()
        assert current is not None and current.tenant_id == "ops-h1"
        Note.objects.create(text="made in the block")
        assert client.get("/notes/").json() == {
            "tenant": "ops-h1",
            "notes": [{"id": 1, "text": "made in the block"}],
        }
    assert get_current_state() is None
    with tenant_client(other) as client:
        assert client.get("/notes/").json() == {"tenant": "ops-h2", "notes": []}
    with tenant_client(other, host="ops-h1.localhost") as client:
        # The host decides what the request sees; the block's tenant is only for the test's code.
        assert client.get("/notes/").json()["tenant"] == "ops-h1"


def test_tenant_client_needs_a_domain() -> None:
    tenant = create_test_tenant("ops-h3", migrate=False)
    with pytest.raises(ValueError, match="has no domain; add one or pass host="):
        with tenant_client(tenant):
            pass


@pytest.mark.asyncio
async def test_async_helpers_under_concurrency() -> None:
    """Two async tenant clients in concurrent tasks: each task sees its own tenant only."""
    tenants = await asyncio.gather(
        acreate_test_tenant("ops-h1", ["ops-h1.localhost"]),
        acreate_test_tenant("ops-h2", ["ops-h2.localhost"]),
    )

    async def use(tenant: BaseTenant) -> list[str]:
        seen = []
        async with async_tenant_client(tenant) as client:
            current = get_current_tenant()
            assert current is not None
            tenant_id = current.tenant_id
            await Marker.objects.acreate(tenant_id=tenant_id)
            for _ in range(10):
                body = (await client.get("/whoami/")).json()
                current = get_current_tenant()
                assert current is not None
                seen.append(f"{body['tenant']}/{body['marker']}/{current.tenant_id}")
                await asyncio.sleep(0)
        assert get_current_state() is None
        return seen

    first, second = await asyncio.gather(*(use(t) for t in tenants))
    assert first == ["ops-h1/ops-h1/ops-h1"] * 10
    assert second == ["ops-h2/ops-h2/ops-h2"] * 10
    await asyncio.gather(*(adrop_test_tenant(t) for t in tenants))
    assert not await sync_to_async(schema_exists)("ops-h1")


def test_why_host_async_client_exists() -> None:
    """Django's AsyncClient appends a host header to its own ``testserver``; we replace it.

    If this starts failing, Django fixed it and HostAsyncClient can go.
    """
    request = AsyncRequestFactory().get("/", headers={"host": "ops-h1.localhost"})
    assert request.META["HTTP_HOST"] == "testserver,ops-h1.localhost"


def test_force_login_inside_tenant_client_is_a_tenant_session() -> None:
    """The docs' admin example: a user and session made in the block belong to the tenant."""
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    tenant = create_test_tenant("ops-h1", ["ops-h1.localhost"])
    create_test_tenant("ops-h2", ["ops-h2.localhost"])
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        with tenant_client(tenant) as client:
            user = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
            client.force_login(user)
            assert client.get("/admin/notes/note/").status_code == 200
            other = client.get("/admin/notes/note/", headers={"host": "ops-h2.localhost"})
            assert other.status_code == 302  # no such session (or user) in ops-h2
