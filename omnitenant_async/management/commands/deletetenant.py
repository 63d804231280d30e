from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends import get_tenant_backend
from ...isolation import IsolationType
from .._tenants import USER_ERRORS, ask, error_message, get_tenant


class Command(BaseCommand):
    help = (
        "Delete a tenant's row and domains. Its schema or database (its data) is kept unless "
        "--drop is given."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True)
        parser.add_argument(
            "--drop", action="store_true", help="Also drop the schema or database: ALL its data."
        )
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive",
            help="Do not ask to confirm --drop.",
        )  # fmt: skip

    def handle(self, *args: Any, tenant_id: str, drop: bool, **options: Any) -> None:
        tenant = get_tenant(tenant_id)
        storage = IsolationType(tenant.isolation_type).label.lower()
        if drop and options["interactive"]:
            answer = ask(
                options.get("stdin") or sys.stdin, self.stdout,
                f"This drops the {storage} of tenant {tenant_id!r} and ALL its data. "
                "Type the tenant id to confirm",
            )  # fmt: skip
            if answer != tenant_id:
                raise CommandError("Confirmation did not match the tenant id; nothing was deleted.")
        try:
            get_tenant_backend(tenant).delete(drop=drop)
        except USER_ERRORS as err:
            raise CommandError(
                f"Deleting tenant {tenant_id!r} failed: {error_message(err)}"
            ) from err
        if options["verbosity"] < 1:
            return
        if drop:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted tenant {tenant_id!r} and its {storage}.")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted tenant {tenant_id!r}")
                + f"; its {storage} and data were kept (use --drop to remove them)."
            )
