from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo.notes.models import Note
from demo.seed import create_database_tenant, create_tenant, ensure_database, migrate_public
from omnitenant_async import tenant_context

DEMO_TENANTS = {"acme": "ACME Corporation", "globex": "Globex Inc", "initech": "Initech"}
# Tenants with a database of their own (tenant_<id>, on the same server), beside the schemas.
DEMO_DATABASE_TENANTS = {"umbrella": "Umbrella Corporation"}


class Command(BaseCommand):
    help = "Create the demo database, migrate it and seed a few tenants on *.localhost."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--recreate", action="store_true")

    def handle(self, *args: Any, port: int, recreate: bool, **options: Any) -> None:
        ensure_database(recreate=recreate)
        migrate_public()
        tenants = [
            create_tenant(tenant_id, name=name, domains=[f"{tenant_id}.localhost"])
            for tenant_id, name in DEMO_TENANTS.items()
        ]
        tenants += [
            create_database_tenant(tenant_id, name=name, domains=[f"{tenant_id}.localhost"])
            for tenant_id, name in DEMO_DATABASE_TENANTS.items()
        ]
        for tenant in tenants:
            name = tenant.name
            with tenant_context(tenant):
                if not Note.objects.exists():
                    Note.objects.create(text=f"Welcome to {name}")
        self.stdout.write("Demo ready. Open:")
        self.stdout.write(f"  http://localhost:{port}/            (public: list of tenants)")
        for tenant_id in DEMO_TENANTS:
            self.stdout.write(
                f"  http://{tenant_id}.localhost:{port}/  (schema; also /whoami/, /feed/)"
            )
        for tenant_id in DEMO_DATABASE_TENANTS:
            self.stdout.write(f"  http://{tenant_id}.localhost:{port}/  (own database; /feed/)")
        self.stdout.write(
            "Live feed: open /feed/ of two tenants side by side and post a note to one:\n"
            "  curl -X POST -H 'Host: acme.localhost' -H 'Content-Type: application/json' "
            f'-d \'{{"text": "hi"}}\' '
            f"http://127.0.0.1:{port}/notes/"
        )
