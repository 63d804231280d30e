"""The admin through Django's test clients on the live database: per-tenant users and data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings

from demo.notes.models import Note
from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.testing import (
    async_tenant_client,
    create_test_tenant,
    drop_test_tenant,
    tenant_client,
)
from omnitenant_async.utils import get_tenant_model

PASSWORD = "adm-pw-123"
FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def admin_tenants(django_db: None) -> Iterator[dict[str, Any]]:
    """Two tenants with notes and a superuser each, and a superuser on the public host."""
    User = get_user_model()
    with override_settings(PASSWORD_HASHERS=FAST_HASHER):
        tenants = {}
        for tenant_id, notes in (("ops-adm-a", ["A note 1", "A note 2"]), ("ops-adm-b", ["B"])):
            tenant = create_test_tenant(tenant_id, [f"{tenant_id}.localhost"])
            with tenant_context(tenant):
                User.objects.create_superuser(f"boss-{tenant_id}", "b@example.com", PASSWORD)
                Note.objects.bulk_create(Note(text=text) for text in notes)
            tenants[tenant_id] = tenant
        with use_master_db():
            User.objects.filter(username="ops-root").delete()
            User.objects.create_superuser("ops-root", "r@example.com", PASSWORD)
        yield tenants
        with use_master_db():
            User.objects.filter(username="ops-root").delete()
    for tenant in tenants.values():
        drop_test_tenant(tenant)


@pytest.fixture(autouse=True)
def _fast_hasher() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=FAST_HASHER):
        yield


def login(client: Client, host: str, username: str) -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": PASSWORD, "next": "/admin/"},
        headers={"host": host},
    )


def test_tenant_superuser_sees_only_its_own_notes(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    response = login(client, "ops-adm-a.localhost", "boss-ops-adm-a")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    page = client.get("/admin/notes/note/", headers={"host": "ops-adm-a.localhost"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "A note 1" in html and "A note 2" in html and "B</a>" not in html
    assert "2 notes" in html
    index = client.get("/admin/", headers={"host": "ops-adm-a.localhost"}).content.decode()
    assert "/admin/notes/note/" in index
    assert "/admin/customers/tenant/" not in index, "tenants are master data, not a tenant's"
    assert (
        client.get("/admin/customers/tenant/", headers={"host": "ops-adm-a.localhost"}).status_code
        == 403
    )


def test_session_of_one_tenant_is_not_valid_on_another(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    assert login(client, "ops-adm-a.localhost", "boss-ops-adm-a").status_code == 302
    other = client.get("/admin/notes/note/", headers={"host": "ops-adm-b.localhost"})
    assert other.status_code == 302 and other["Location"].startswith("/admin/login/")
    # ...and the tenant's user does not exist elsewhere.
    refused = login(Client(), "ops-adm-b.localhost", "boss-ops-adm-a")
    assert (
        refused.status_code == 200
        and "Please enter the correct username" in refused.content.decode()
    )


def test_public_host_shows_tenants_and_hides_tenant_models(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    assert login(client, "localhost", "ops-root").status_code == 302
    index = client.get("/admin/", headers={"host": "localhost"}).content.decode()
    assert "/admin/customers/tenant/" in index and "/admin/notes/note/" not in index
    assert client.get("/admin/notes/note/", headers={"host": "localhost"}).status_code == 403
    assert client.get("/admin/notes/note/add/", headers={"host": "localhost"}).status_code == 403
    tenants = client.get("/admin/customers/tenant/?q=ops-adm", headers={"host": "localhost"})
    html = tenants.content.decode()
    assert tenants.status_code == 200
    assert "ops-adm-a.localhost" in html and "ops-adm-b.localhost" in html
    # The public superuser is not a user of any tenant.
    refused = login(Client(), "ops-adm-a.localhost", "ops-root")
    assert refused.status_code == 200


def test_tenant_id_is_read_only_once_created(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    login(client, "localhost", "ops-root")
    pk = admin_tenants["ops-adm-a"].pk
    page = client.get(f"/admin/customers/tenant/{pk}/change/", headers={"host": "localhost"})
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="tenant_id"' not in html and 'name="name"' in html
    assert 'name="domains-0-domain"' in html
    add = client.get("/admin/customers/tenant/add/", headers={"host": "localhost"})
    assert 'name="tenant_id"' in add.content.decode()


def _tenant_form(tenant_id: str, domains: list[str]) -> dict[str, str]:
    data = {
        "tenant_id": tenant_id,
        "name": tenant_id.title(),
        "isolation_type": "0",
        "config": "{}",
        "domains-TOTAL_FORMS": str(len(domains)),
        "domains-INITIAL_FORMS": "0",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
    }
    for i, domain in enumerate(domains):
        data[f"domains-{i}-domain"] = domain
        data[f"domains-{i}-is_primary"] = "on" if i == 0 else ""
    return data


def _has_table(schema: str, table: str) -> bool:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            [schema, table],
        )
        return cursor.fetchone() is not None


def test_adding_a_tenant_in_the_admin_provisions_it(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    login(client, "localhost", "ops-root")
    try:
        response = client.post(
            "/admin/customers/tenant/add/", _tenant_form("ops-adm-new", ["ops-adm-new.localhost"]),
            headers={"host": "localhost"}, follow=True,
        )  # fmt: skip
        assert response.status_code == 200
        assert "Tenant &#x27;ops-adm-new&#x27;: created and migrated." in response.content.decode()
        assert _has_table("ops-adm-new", "notes_note")
        # Served right away on its domain.
        with tenant_client(get_tenant_model().objects.get(tenant_id="ops-adm-new")) as tenant_web:
            assert tenant_web.get("/notes/").json() == {"tenant": "ops-adm-new", "notes": []}
        bad = client.post(
            "/admin/customers/tenant/add/", _tenant_form("Bad Id", []),
            headers={"host": "localhost"},
        )  # fmt: skip
        assert bad.status_code == 200 and "is not a valid DNS label" in bad.content.decode()
    finally:
        drop_test_tenant("ops-adm-new")


def test_provision_action_creates_or_migrates(admin_tenants: dict[str, Any]) -> None:
    client = Client()
    login(client, "localhost", "ops-root")
    with use_master_db():
        bare = get_tenant_model().objects.create(tenant_id="ops-adm-bare", name="Bare")
    try:
        assert not _has_table("ops-adm-bare", "notes_note")
        pks = [str(bare.pk), str(admin_tenants["ops-adm-a"].pk)]
        response = client.post(
            "/admin/customers/tenant/",
            {"action": "provision_tenants", "_selected_action": pks},
            headers={"host": "localhost"}, follow=True,
        )  # fmt: skip
        html = response.content.decode()
        assert "Tenant &#x27;ops-adm-bare&#x27;: created and migrated." in html
        assert "Tenant &#x27;ops-adm-a&#x27;: migrated." in html
        assert _has_table("ops-adm-bare", "notes_note")
        with tenant_context(admin_tenants["ops-adm-a"]):
            assert Note.objects.count() == 2, "provisioning an existing tenant keeps its data"
    finally:
        drop_test_tenant("ops-adm-bare")


@pytest.mark.asyncio
async def test_admin_through_async_client(admin_tenants: dict[str, Any]) -> None:
    """The async request path: login and changelist of tenant b through the AsyncClient."""
    async with async_tenant_client(admin_tenants["ops-adm-b"]) as client:
        response = await client.post(
            "/admin/login/?next=/admin/",
            {"username": "boss-ops-adm-b", "password": PASSWORD, "next": "/admin/"},
        )
        assert response.status_code == 302
        page = await client.get("/admin/notes/note/")
        html = page.content.decode()
        assert page.status_code == 200 and "1 note" in html and "A note" not in html


def test_adding_a_tenant_over_an_existing_schema_asks_before_adopting_it(
    admin_tenants: dict[str, Any],
) -> None:
    """A schema kept from a deleted tenant is not migrated by the add form, only by the action."""
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "ops-adm-old"')
        cursor.execute('CREATE TABLE "ops-adm-old".kept (id int)')
    client = Client()
    login(client, "localhost", "ops-root")
    try:
        response = client.post(
            "/admin/customers/tenant/add/", _tenant_form("ops-adm-old", []),
            headers={"host": "localhost"}, follow=True,
        )  # fmt: skip
        assert "already exists (kept from a deleted tenant?)" in response.content.decode()
        assert _has_table("ops-adm-old", "kept") and not _has_table("ops-adm-old", "notes_note")
        with use_master_db():
            pk = get_tenant_model().objects.get(tenant_id="ops-adm-old").pk
        response = client.post(
            "/admin/customers/tenant/",
            {"action": "provision_tenants", "_selected_action": [str(pk)]},
            headers={"host": "localhost"}, follow=True,
        )  # fmt: skip
        assert "Tenant &#x27;ops-adm-old&#x27;: migrated." in response.content.decode()
        assert _has_table("ops-adm-old", "kept") and _has_table("ops-adm-old", "notes_note")
    finally:
        drop_test_tenant("ops-adm-old")
