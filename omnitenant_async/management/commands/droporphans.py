"""List, and on request drop, schemas and databases that no tenant row uses any more."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from ...conf import get_config
from ...context import use_master_db
from ...engines.database_settings import RESERVED_DATABASES, database_settings_for
from ...isolation import IsolationType
from ...provisioning import get_tenant_backend
from ...provisioning.database import DatabaseTenantBackend
from ...registry import get_tenant_model
from ...validators import is_dns_label, validate_tenant_id
from .._tenants import USER_ERRORS, add_drop_arguments, ask, error_message

# A probe tenant id: only used to reach the tenant databases' server, never saved.
_PROBE_ID = "droporphans-probe"


@dataclass(frozen=True)
class Orphan:
    kind: str  # "schema" or "database"
    name: str
    detail: str


class Command(BaseCommand):
    help = (
        "List the schemas and databases left behind by `deletetenant` without --drop (no "
        "tenant row uses them). --drop drops them, after you confirm. Re-attach one instead "
        "with `createtenant --adopt --tenant-id <id>`."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "names", nargs="*", metavar="name",
            help="Only these orphans (schema or database names); default: all listed.",
        )  # fmt: skip
        add_drop_arguments(parser, "Drop them: ALL their data is lost.")

    def handle(self, *args: Any, names: list[str], drop: bool, **options: Any) -> None:
        orphans = _select(find_orphans(), names)
        if not orphans:
            self.stdout.write("No orphaned schemas or databases.")
            return
        for orphan in orphans:
            self.stdout.write(f"{orphan.kind:<8}  {orphan.name}  ({orphan.detail})")
        if not drop:
            self.stdout.write(
                "Nothing dropped. Drop them with --drop, or re-attach one with "
                "`manage.py createtenant --adopt --tenant-id <id>`."
            )
            return
        if options["interactive"]:
            answer = ask(
                options.get("stdin") or sys.stdin, self.stdout,
                f"This drops the {len(orphans)} schema(s)/database(s) above and ALL their data. "
                "Type 'drop' to confirm",
            )  # fmt: skip
            if answer != "drop":
                raise CommandError("Confirmation was not 'drop'; nothing was dropped.")
        still = {(o.kind, o.name) for o in find_orphans()}  # a tenant may have adopted one since
        for orphan in orphans:
            if (orphan.kind, orphan.name) not in still:
                self.stdout.write(f"Kept {orphan.kind} {orphan.name!r}: a tenant uses it now.")
                continue
            try:
                drop_orphan(orphan)
            except USER_ERRORS as err:
                raise CommandError(
                    f"Dropping {orphan.kind} {orphan.name!r} failed: {error_message(err)}"
                ) from err
            if options["verbosity"] >= 1:
                self.stdout.write(self.style.SUCCESS(f"Dropped {orphan.kind} {orphan.name!r}."))


def _select(orphans: list[Orphan], names: list[str]) -> list[Orphan]:
    """The orphans named (all when none are); a name that is no orphan is an error."""
    if not names:
        return orphans
    by_name = {o.name: o for o in orphans}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CommandError(
            f"Not an orphaned schema or database: {', '.join(map(repr, unknown))}. Only what "
            "`manage.py droporphans` lists can be dropped (never a tenant's own, public, "
            "pg_*, information_schema or the template)."
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def find_orphans() -> list[Orphan]:
    """Schemas on the master database and tenant-prefixed databases on the master's server
    that no tenant row uses; never system, template, shared or extra search-path ones."""
    return _orphan_schemas() + _orphan_databases()


def _tenants() -> list[Any]:
    with use_master_db():
        return list(get_tenant_model().objects.all())


def _orphan_schemas() -> list[Orphan]:
    config = get_config()
    used = {t.tenant_id for t in _tenants()}
    kept = set(config.EXTRA_SEARCH_PATHS) | {config.TEMPLATE_SCHEMA}
    connection = connections[config.MASTER_DB_ALIAS]
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, count(c.relname) FROM pg_namespace n LEFT JOIN pg_class c "
            "ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') GROUP BY n.nspname "
            "ORDER BY n.nspname"
        )
        rows = cursor.fetchall()
    return [
        Orphan("schema", name, f"{tables} table(s)")
        for name, tables in rows
        if name not in used and name not in kept and _could_be_tenant(name)
    ]


def _could_be_tenant(name: str) -> bool:
    """Only names a tenant could have had: not public, pg_*, information_schema..."""
    if not is_dns_label(name):
        return False
    try:
        validate_tenant_id(name)
    except ValueError:
        return False
    return True


def _probe(name: str | None = None) -> DatabaseTenantBackend:
    """A backend of an unsaved database tenant: to list or drop databases on the server."""
    config = {"database": {"NAME": name}} if name else {}
    tenant = get_tenant_model()(
        tenant_id=_PROBE_ID, isolation_type=IsolationType.DATABASE, config=config
    )
    return DatabaseTenantBackend(tenant)


def _orphan_databases() -> list[Orphan]:
    config = get_config()
    if config.TENANT_DB_ALIAS not in connections.settings:
        return []  # no database tenants in this deployment
    used = {
        str(database_settings_for(t)["NAME"])
        for t in _tenants()
        if IsolationType(t.isolation_type) == IsolationType.DATABASE
    }
    kept = (
        used
        | RESERVED_DATABASES
        | {
            str(connections.settings[config.MASTER_DB_ALIAS]["NAME"]),
            config.DATABASE_MAINTENANCE_DB,
            config.DATABASE_TEMPLATE or "",
        }
    )
    prefix = config.DATABASE_NAME_PREFIX
    if not prefix:
        return []  # without a prefix, a tenant database cannot be told from any other
    with _probe()._server() as conn:
        rows = conn.execute(
            "SELECT datname, pg_size_pretty(pg_database_size(datname)) FROM pg_database "
            "WHERE NOT datistemplate AND starts_with(datname, %s) ORDER BY datname",
            [prefix],
        ).fetchall()
    return [Orphan("database", name, size) for name, size in rows if name not in kept]


def drop_orphan(orphan: Orphan) -> None:
    """Drop through the tenant backends, which refuse reserved and template names again."""
    if orphan.kind == "database":
        _probe(orphan.name).drop_storage()
        return
    tenant = get_tenant_model()(tenant_id=orphan.name, isolation_type=IsolationType.SCHEMA)
    get_tenant_backend(tenant).drop_storage()
