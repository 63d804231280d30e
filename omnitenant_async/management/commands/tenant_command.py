from __future__ import annotations

import argparse
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from ...context import tenant_context
from .._tenants import get_tenant, raw_stream


class Command(BaseCommand):
    help = (
        "Run any management command inside a tenant, e.g. "
        "`tenant_command --tenant-id acme createsuperuser`. --tenant-id goes before the command."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", required=True)
        parser.add_argument("subcommand", metavar="command", help="The command to run.")
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="Arguments and options of the command."
        )

    def handle(self, *args: str, tenant_id: str, subcommand: str, **options: Any) -> None:
        tenant = get_tenant(tenant_id)
        with tenant_context(tenant):
            call_command(
                subcommand, *args, stdout=raw_stream(self.stdout), stderr=raw_stream(self.stderr)
            )
