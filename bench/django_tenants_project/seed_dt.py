"""Create the django-tenants database with tenants b00..b49 on ``<id>.localhost`` (idempotent).

Run with the django-tenants virtualenv from this directory: ``python seed_dt.py``.
"""

from __future__ import annotations

import os
import sys

import django
import psycopg
from psycopg import sql

N_TENANTS = 50
TENANT_IDS = [f"b{i:02d}" for i in range(N_TENANTS)]


def ensure_database() -> None:
    from django.conf import settings

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": "postgres"}
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if found.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dtproj.settings")
    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import schema_context
    from dtcustomers.models import Client, Domain
    from dtnotes.models import Marker

    ensure_database()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    for tenant_id in TENANT_IDS:
        client = Client.objects.filter(schema_name=tenant_id).first()
        if client is None:
            client = Client(schema_name=tenant_id, name=tenant_id.title())
            client.save(verbosity=0)  # creates and migrates the schema
        Domain.objects.get_or_create(
            domain=f"{tenant_id}.localhost", defaults={"tenant": client, "is_primary": True}
        )
        with schema_context(tenant_id):
            Marker.objects.get_or_create(tenant_id=tenant_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
