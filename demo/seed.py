"""Create the demo database and its tenants (used by ``demo_setup`` and by the tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from psycopg import sql

from omnitenant_async import use_master_db
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.utils import get_domain_model, get_tenant_model


def ensure_database(*, recreate: bool = False) -> None:
    """Create settings.DATABASES['default']['NAME'] on the server if it is missing."""
    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": "postgres"}
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    for conn in connections.all():
        conn.close()
    with psycopg.connect(**params, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone()
        if exists and recreate:
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db["NAME"]))
            )
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


def migrate_public() -> None:
    with use_master_db():
        call_command("migrate", interactive=False, verbosity=0)


def create_tenant(
    tenant_id: str, *, name: str | None = None, domains: Iterable[str] = (), **fields: Any
) -> Any:
    """Create a schema tenant with its domains and marker row (idempotent)."""
    from omnitenant_async import tenant_context

    from .notes.models import Marker

    Tenant, Domain = get_tenant_model(), get_domain_model()
    with use_master_db():
        tenant = Tenant.objects.filter(tenant_id=tenant_id).first()
        if tenant is None:
            tenant = Tenant(tenant_id=tenant_id, name=name or tenant_id.title(), **fields)
            get_tenant_backend(tenant).create(run_migrations=True)
        for i, domain in enumerate(domains):
            Domain.objects.get_or_create(
                domain=domain, defaults={"tenant": tenant, "is_primary": i == 0}
            )
    with tenant_context(tenant):
        Marker.objects.get_or_create(tenant_id=tenant_id)
    return tenant


def create_database_tenant(
    tenant_id: str,
    *,
    name: str | None = None,
    database: dict[str, Any] | None = None,
    domains: Iterable[str] = (),
    **fields: Any,
) -> Any:
    """Create a database tenant: its own database (``database``: NAME/HOST/PORT/... overrides).

    A database left over from an earlier run (its tenant row gone) is adopted and migrated.
    """
    from omnitenant_async.isolation import IsolationType
    from omnitenant_async.provisioning.database import DatabaseTenantBackend

    config = {"database": dict(database or {})}
    Tenant = get_tenant_model()
    with use_master_db():
        if not Tenant.objects.filter(tenant_id=tenant_id).exists():
            tenant = Tenant(
                tenant_id=tenant_id, name=name or tenant_id.title(),
                isolation_type=IsolationType.DATABASE, config=config, **fields,
            )  # fmt: skip
            backend = DatabaseTenantBackend(tenant)
            if backend.exists():
                tenant.save()
                backend.migrate()
    return create_tenant(
        tenant_id,
        name=name,
        domains=domains,
        isolation_type=IsolationType.DATABASE,
        config=config,
        **fields,
    )
