"""Names: tenant ids refused before anything is written, schema names as PostgreSQL allows them,
and ``bind_context`` used from many threads at once."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from demo.customers.models import Tenant
from omnitenant_async import bind_context, tenant_context, use_master_db, use_schema
from omnitenant_async.context import get_current_state

pytestmark = pytest.mark.usefixtures("tenants")


@pytest.mark.parametrize(
    ("tenant_id", "message"),
    [
        ("public", "reserved"),
        ("pg_foo", "reserved"),
        ("pg-foo", "reserved"),
        ("information_schema", "reserved"),
        ("a" * 64, "64 characters"),
        ("Acme", "DNS label"),
        ("acme_corp", "DNS label"),
        ("", "non-empty"),
    ],
)
def test_invalid_tenant_id_is_refused_by_save_before_any_row(tenant_id: str, message: str) -> None:
    before = Tenant.objects.count()
    with pytest.raises(ValidationError, match=message) as info:
        Tenant.objects.create(tenant_id=tenant_id, name="bad")
    assert "tenant_id" in info.value.message_dict
    assert Tenant.objects.count() == before
    assert not Tenant.objects.filter(tenant_id=tenant_id).exists()


def test_valid_tenant_id_still_saves() -> None:
    tenant = Tenant.objects.create(tenant_id="valid-save", name="ok")
    try:
        tenant.name = "renamed"
        tenant.save()
    finally:
        tenant.delete()


def test_use_schema_reaches_an_underscore_schema_and_quotes_it() -> None:
    """django-tenants schemas often have underscores (``acme_corp``): they must be usable."""
    names = ["acme_corp", 'odd"; drop table x; --']
    with use_master_db(), connection.cursor() as cursor:
        for i, name in enumerate(names):
            quoted = connection.ops.quote_name(name.replace('"', '""'))
            cursor.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
            cursor.execute(f"CREATE SCHEMA {quoted}")
            cursor.execute(f"CREATE TABLE {quoted}.legacy (v int)")
            cursor.execute(f"INSERT INTO {quoted}.legacy VALUES ({i})")
    try:
        for i, name in enumerate(names):
            with use_schema(name), connection.cursor() as cursor:
                cursor.execute("SELECT v FROM legacy")
                assert cursor.fetchall() == [(i,)]
    finally:
        with use_master_db(), connection.cursor() as cursor:
            for name in names:
                quoted = connection.ops.quote_name(name.replace('"', '""'))
                cursor.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
        connection.close()


marker_var: contextvars.ContextVar[int] = contextvars.ContextVar("marker_var", default=-1)


def test_bind_context_runs_concurrently_in_an_executor(tenants: dict[str, Any]) -> None:
    """One bound function, called from 8 threads at once: each call gets its own copy."""

    def job(i: int) -> tuple[str | None, int, int]:
        before = marker_var.get()
        marker_var.set(i)  # must not leak into another call
        state = get_current_state()
        return (state.tenant_id if state else None, before, marker_var.get())

    with tenant_context(tenants["t03"]):
        bound = bind_context(job)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(bound, range(400)))
    assert results == [("t03", -1, i) for i in range(400)]
