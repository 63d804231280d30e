from __future__ import annotations

import json
import sys
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...models import BaseTenant
from ...provisioning.spares import wait_for_spares
from .._tenants import (
    ISOLATION_NAMES,
    USER_ERRORS,
    ask,
    can_prompt,
    check_free_domains,
    check_new_tenant_id,
    create_tenant,
    error_message,
)

NO_MIGRATE_WITH_DOMAINS = (
    "--no-migrate cannot be combined with --domain: requests to the domain would reach an "
    "empty schema. Create the tenant without --domain, run `manage.py migratetenant "
    "--tenant-id {tenant_id}`, then add its domains (admin, or Domain.objects.create()); or "
    "drop --no-migrate."
)


class Command(BaseCommand):
    help = (
        "Create a tenant: its row, its schema (or database), its migrations and its domains. "
        "Prompts for what is missing when run in a terminal."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant-id", help="DNS label; also the schema name.")
        parser.add_argument("--name", help="Display name (default: the tenant id).")
        parser.add_argument(
            "--domain",
            action="append",
            default=[],
            dest="domains",
            help="Host name of the tenant; repeat for several, the first is primary.",
        )
        parser.add_argument("--isolation", choices=sorted(ISOLATION_NAMES), default=None)
        parser.add_argument(
            "--config", help="JSON object stored in tenant.config (e.g. database settings)."
        )
        parser.add_argument(
            "--no-migrate",
            action="store_false",
            dest="migrate",
            help="Create the schema but do not run its migrations (no domains are attached).",
        )
        parser.add_argument(
            "--adopt",
            action="store_true",
            help="Attach an existing schema or database (kept by deletetenant without --drop) "
            "to the new tenant row and migrate it, instead of creating one.",
        )
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive",
            help="Never prompt; fail if --tenant-id is missing.",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        tenant_id = options["tenant_id"]
        name, domains, isolation = options["name"], options["domains"], options["isolation"]
        if tenant_id is None:
            if not (options["interactive"] and can_prompt(stdin)):
                raise CommandError(
                    "--tenant-id is required with --noinput or when not run in a terminal."
                )
            tenant_id, name, domains, isolation = self._prompt(stdin, options)
        if domains and not options["migrate"]:
            raise CommandError(NO_MIGRATE_WITH_DOMAINS.format(tenant_id=tenant_id))
        config = _parse_config(options["config"])
        try:
            tenant = create_tenant(
                tenant_id,
                name=name,
                domains=domains,
                isolation=ISOLATION_NAMES[isolation or "schema"],
                config=config,
                run_migrations=options["migrate"],
                verbosity=max(options["verbosity"] - 1, 0),
                stdout=cast(TextIO, self.stdout),
                adopt=options["adopt"],
            )
        except USER_ERRORS as err:
            raise CommandError(
                f"Could not create tenant {tenant_id!r}: {error_message(err)}"
            ) from err
        # A claimed spare's replacement is being cloned in this process's refill thread: let
        # it finish before the process exits (it would be rolled back, leaving one spare less).
        wait_for_spares(timeout=120)
        if options["verbosity"] >= 1:
            self._report(tenant, options["migrate"], options["adopt"])

    def _prompt(self, stdin: TextIO, options: dict[str, Any]) -> tuple[str, str, list[str], str]:
        """Ask for what is missing; each answer is checked (free id, free domains) as typed."""
        out = self.stdout
        tenant_id = ask(stdin, out, "Tenant id", check=check_new_tenant_id)
        name = options["name"] or ask(stdin, out, "Tenant name", default=tenant_id)
        domains = options["domains"]
        if not domains and options["migrate"]:  # --no-migrate attaches no domains
            answer = ask(
                stdin, out, "Domains, comma-separated (blank: none)",
                check=lambda v: check_free_domains(v.split(",")),
            )  # fmt: skip
            domains = answer.split(",")
        isolation = options["isolation"] or ask(
            stdin, out, "Isolation (schema/database)", default="schema", check=_check_isolation
        )
        return tenant_id, name, domains, isolation

    def _report(self, tenant: BaseTenant, migrated: bool, adopted: bool) -> None:
        domains = ", ".join(d.domain for d in tenant.domains.order_by("-is_primary", "pk"))
        verb = "Adopted" if adopted else "Created"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} tenant {tenant.tenant_id!r}")
            + f" ({'migrated' if migrated else 'not migrated'}; domains: {domains or 'none'})."
        )
        if not migrated:
            self.stdout.write(
                f"Run `manage.py migratetenant --tenant-id {tenant.tenant_id}` before using it."
            )


def _check_isolation(value: str) -> None:
    if value not in ISOLATION_NAMES:
        raise ValueError(f"Choose one of: {', '.join(sorted(ISOLATION_NAMES))}.")


def _parse_config(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CommandError(f"--config is not valid JSON: {err}.") from None
    if not isinstance(config, dict):
        raise CommandError("--config must be a JSON object, e.g. '{\"database\": {...}}'.")
    return config
