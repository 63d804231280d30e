"""Schema provisioning: create / migrate / delete, their signals, names and quoting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from demo.notes.models import Marker
from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.exceptions import InvalidTenantName, TenantAlreadyExists
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.signals import tenant_created, tenant_deleted, tenant_migrated
from omnitenant_async.utils import get_tenant_model

pytestmark = pytest.mark.usefixtures("django_db")


def schema_exists(name: str) -> bool:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def tables_in(schema: str) -> set[str]:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def events() -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def recorder(name: str) -> Any:
        def receiver(sender: Any, tenant: Any, **kwargs: Any) -> None:
            seen.append((name, tenant.tenant_id))

        return receiver

    receivers = {
        tenant_created: recorder("created"),
        tenant_migrated: recorder("migrated"),
        tenant_deleted: recorder("deleted"),
    }
    for sig, receiver in receivers.items():
        sig.connect(receiver)
    yield seen
    for sig, receiver in receivers.items():
        sig.disconnect(receiver)


def new_tenant(tenant_id: str) -> Any:
    return get_tenant_model()(tenant_id=tenant_id, name=tenant_id)


def test_create_migrate_delete_cycle(events: list[tuple[str, Any]]) -> None:
    tenant = new_tenant("prov-a")
    backend = get_tenant_backend(tenant)
    backend.create(run_migrations=True)
    assert tenant.pk is not None
    assert events == [("created", "prov-a"), ("migrated", "prov-a")]
    tables = tables_in("prov-a")
    assert {"notes_marker", "notes_note", "django_migrations", "auth_user"} <= tables
    assert not {"customers_tenant", "customers_domain"} & tables  # master tables stay in public
    assert "notes_marker" not in tables_in("public")  # tenant tables never in public
    with tenant_context(tenant):
        Marker.objects.create(tenant_id="prov-a")
        assert Marker.objects.count() == 1
    backend.migrate()  # idempotent
    backend.delete()  # no drop by default: the data stays
    assert not get_tenant_model().objects.filter(tenant_id="prov-a").exists()
    assert schema_exists("prov-a")
    assert events[-1] == ("deleted", "prov-a")
    get_tenant_backend(new_tenant("prov-a")).delete(drop=True)
    assert not schema_exists("prov-a")


def test_create_refuses_existing_schema() -> None:
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "prov-b"')
    try:
        with pytest.raises(TenantAlreadyExists, match="prov-b"):
            get_tenant_backend(new_tenant("prov-b")).create(run_migrations=False)
        assert not get_tenant_model().objects.filter(tenant_id="prov-b").exists()
    finally:
        get_tenant_backend(new_tenant("prov-b")).delete(drop=True)


@pytest.mark.parametrize(
    "bad",
    [
        "public",
        "information_schema",
        "pg_toast",
        "pg-x",
        "Upper",
        "a_b",
        "x" * 64,
        "-a",
        "a;drop",
        "",
    ],
)
def test_reserved_and_invalid_names_refused(bad: str) -> None:
    with pytest.raises(InvalidTenantName):
        get_tenant_backend(new_tenant(bad)).create()
    assert not get_tenant_model().objects.filter(tenant_id=bad).exists()


def test_failed_migration_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    from omnitenant_async.provisioning.schema import SchemaTenantBackend

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("migration failed")

    monkeypatch.setattr(SchemaTenantBackend, "migrate", broken)
    with pytest.raises(RuntimeError):
        get_tenant_backend(new_tenant("prov-c")).create()
    assert not schema_exists("prov-c")
    assert not get_tenant_model().objects.filter(tenant_id="prov-c").exists()


@pytest.mark.asyncio
async def test_async_twins() -> None:
    from asgiref.sync import sync_to_async

    tenant = new_tenant("prov-d")
    backend = get_tenant_backend(tenant)
    await backend.acreate()
    assert await sync_to_async(schema_exists)("prov-d")
    await backend.amigrate()
    async with tenant_context(tenant):
        await Marker.objects.acreate(tenant_id="prov-d")
        assert await Marker.objects.acount() == 1
    await backend.adelete(drop=True)
    assert not await sync_to_async(schema_exists)("prov-d")
