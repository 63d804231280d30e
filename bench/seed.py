"""Create and fill the benchmark databases (idempotent).

    DJANGO_SETTINGS_MODULE=bench.tenant_settings python -m bench.seed tenancy
    DJANGO_SETTINGS_MODULE=bench.plain_settings  python -m bench.seed plain

``tenancy``: schema tenants b00..b49 on ``<id>.localhost``, each with a ``Marker`` row holding
its id. ``plain``: one ``Marker(tenant_id="plain")`` in the public schema.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import django

N_TENANTS = 50
TENANT_IDS = [f"b{i:02d}" for i in range(N_TENANTS)]
PLAIN_MARKER = "plain"


def seed_tenancy() -> None:
    from django.db import connections

    from demo.seed import create_tenant, ensure_database, migrate_public

    ensure_database()
    migrate_public()

    def create(tenant_id: str) -> None:
        try:
            create_tenant(tenant_id, domains=[f"{tenant_id}.localhost"])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, TENANT_IDS))


def seed_plain() -> None:
    from django.core.management import call_command

    from demo.notes.models import Marker
    from demo.seed import ensure_database

    ensure_database()
    call_command("migrate", interactive=False, verbosity=0)
    Marker.objects.get_or_create(tenant_id=PLAIN_MARKER)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("tenancy", "plain"):
        print("usage: python -m bench.seed tenancy|plain", file=sys.stderr)
        return 2
    django.setup()
    seed_tenancy() if argv[1] == "tenancy" else seed_plain()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
