from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends import get_tenant_backend
from ...context import tenant_context
from .._tenants import USER_ERRORS, error_message, get_tenant, raw_stream


class Command(BaseCommand):
    help = "Run one tenant's migrations (Django's migrate, inside the tenant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True)
        parser.add_argument("app_label", nargs="?", help="Only migrate this app.")
        parser.add_argument(
            "migration_name", nargs="?", help="Migrate the app to this migration ('zero' too)."
        )
        parser.add_argument(
            "--plan", action="store_true", help="Show the migrations that would run; apply none."
        )

    def handle(
        self,
        *args: Any,
        tenant_id: str,
        app_label: str | None,
        migration_name: str | None,
        plan: bool,
        **options: Any,
    ) -> None:
        tenant = get_tenant(tenant_id)
        backend = get_tenant_backend(tenant)
        if plan:
            labels = [a for a in (app_label, migration_name) if a]
            with tenant_context(backend.migration_state()):
                call_command(
                    "migrate", *labels, plan=True, database=backend.migration_alias,
                    interactive=False, verbosity=options["verbosity"],
                    stdout=raw_stream(self.stdout),
                )  # fmt: skip
            return
        try:
            backend.migrate(
                app_label,
                migration_name,
                verbosity=options["verbosity"],
                stdout=raw_stream(self.stdout),
            )
        except USER_ERRORS as err:
            raise CommandError(
                f"Migrating tenant {tenant_id!r} failed: {error_message(err)}"
            ) from err
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"Tenant {tenant_id!r} migrated."))
