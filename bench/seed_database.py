"""Create the database tenants of the benchmark (idempotent, fast).

    DJANGO_SETTINGS_MODULE=bench.database_settings python -m bench.seed_database 500

One template database is migrated through the tenant backend; the tenant databases are clones
of it (``CREATE DATABASE ... TEMPLATE``, in parallel), each given a ``Marker`` with its id.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import django
import psycopg
from psycopg.rows import TupleRow

from bench.common import conninfo

if TYPE_CHECKING:
    from omnitenant_async.models import BaseTenant

TEMPLATE_ID = "dtpl"


def tenant_id(i: int) -> str:
    return f"d{i:02d}"  # d00..d99, d100..: what rotate_hosts.lua builds with prefix "d"


def _server(name: str = "postgres") -> psycopg.Connection[TupleRow]:
    from django.conf import settings

    return psycopg.connect(conninfo(name, settings.DATABASES["default"]), autocommit=True)


def _existing() -> set[str]:
    with _server() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def _template(Tenant: type[BaseTenant]) -> str:
    from omnitenant_async.isolation import IsolationType
    from omnitenant_async.provisioning.database import DatabaseTenantBackend

    template = Tenant(tenant_id=TEMPLATE_ID, isolation_type=IsolationType.DATABASE)
    backend = DatabaseTenantBackend(template)
    if backend.database_name not in _existing():
        backend.create_storage()
        backend.migrate()  # the tenant row is never saved: the template serves no requests
    return backend.database_name


def _clone(template: str, name: str, tid: str) -> None:
    from psycopg import sql

    with _server() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    with _server(name) as conn:
        conn.execute("INSERT INTO notes_marker (tenant_id) VALUES (%s)", [tid])


def seed(count: int) -> None:
    from django.db import connections

    from demo.seed import ensure_database, migrate_public
    from omnitenant_async.engines.database_settings import default_database_name
    from omnitenant_async.engines.pools import pool_registry
    from omnitenant_async.isolation import IsolationType
    from omnitenant_async.utils import get_domain_model, get_tenant_model

    ensure_database()
    migrate_public()
    Tenant, Domain = get_tenant_model(), get_domain_model()
    template = _template(Tenant)
    connections.close_all()
    pool_registry.close_all()  # CREATE DATABASE ... TEMPLATE needs the template without connections
    ids = [tenant_id(i) for i in range(count)]
    names = {tid: default_database_name(tid) for tid in ids}
    existing = _existing()
    missing = [tid for tid in ids if names[tid] not in existing]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda tid: _clone(template, names[tid], tid), missing))
    have = set(Tenant.objects.filter(tenant_id__in=ids).values_list("tenant_id", flat=True))
    rows = Tenant.objects.bulk_create(
        Tenant(tenant_id=tid, name=tid, isolation_type=IsolationType.DATABASE)
        for tid in ids
        if tid not in have
    )
    Domain.objects.bulk_create(
        Domain(domain=f"{t.tenant_id}.localhost", tenant=t, is_primary=True) for t in rows
    )
    print(f"{len(missing)} databases cloned, {len(rows)} tenant rows added, {count} in all")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m bench.seed_database COUNT", file=sys.stderr)
        return 2
    django.setup()
    seed(int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
