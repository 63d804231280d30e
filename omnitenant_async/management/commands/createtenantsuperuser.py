from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import router

from ...context import tenant_context
from .._tenants import get_tenant, raw_stream


class Command(BaseCommand):
    help = (
        "Create a superuser inside a tenant (Django's createsuperuser in the tenant). With "
        "--noinput the password comes from DJANGO_SUPERUSER_PASSWORD."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True)
        parser.add_argument("--username")
        parser.add_argument("--email")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args: Any, tenant_id: str, **options: Any) -> None:
        tenant = get_tenant(tenant_id)
        User = get_user_model()
        extra = {
            key: options[key]
            for key in (User.USERNAME_FIELD, "email", "stdin")
            if options.get(key) is not None
        }
        with tenant_context(tenant):
            call_command(
                "createsuperuser",
                interactive=options["interactive"],
                database=router.db_for_write(User),
                verbosity=options["verbosity"],
                stdout=raw_stream(self.stdout),
                stderr=raw_stream(self.stderr),
                **extra,
            )
