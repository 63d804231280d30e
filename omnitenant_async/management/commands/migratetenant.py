from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import get_config
from ...context import tenant_context
from ...provisioning import get_tenant_backend
from ...provisioning.clone import migrate_template
from .._tenants import USER_ERRORS, error_message, get_tenant, raw_stream, refresh_spares


class Command(BaseCommand):
    help = "Run one tenant's migrations (Django's migrate, inside the tenant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id")
        parser.add_argument(
            "--template", action="store_true",
            help="Migrate the template schema (OMNITENANT_CONFIG['TEMPLATE_SCHEMA']) new "
            "tenants are cloned from, instead of a tenant.",
        )  # fmt: skip
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
        if options.get("template"):
            self._migrate_template(app_label, migration_name, options["verbosity"])
            return
        if not tenant_id:
            raise CommandError("Pass --tenant-id ID (or --template for the template schema).")
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

    def _migrate_template(self, app_label: str | None, name: str | None, verbosity: int) -> None:
        if not get_config().TEMPLATE_SCHEMA:
            raise CommandError("OMNITENANT_CONFIG['TEMPLATE_SCHEMA'] is not set; no template.")
        template = migrate_template(
            app_label, name, verbosity=verbosity, stdout=raw_stream(self.stdout)
        )
        if verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(f"Template schema {template!r} migrated."))
        refresh_spares(self.stdout)
