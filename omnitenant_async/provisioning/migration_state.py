"""Which tenants have migrations to apply, found with a few queries instead of one ``migrate`` each.

The project's migration graph is built once, without a database, and gives the rows that a
fully migrated tenant's ``django_migrations`` holds. Then every schema tenant's table is read,
``BATCH_SIZE`` schemas per query. A tenant holding every row gets an empty plan from
``migrate``, so it can be skipped. The check errs only towards "pending": a tenant it cannot
prove current (no table, a missing row, a database tenant) is migrated as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connections
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.loader import MigrationLoader
from psycopg import sql

from ..conf import get_config
from ..context import use_master_db
from ..models import BaseTenant
from . import get_tenant_backend
from .schema import SchemaTenantBackend

__all__ = [
    "BATCH_SIZE",
    "MigrationTargetError",
    "PendingTenants",
    "expected_migrations",
    "find_pending_tenants",
    "pending_schemas",
]

#: Schemas read per query (one ``UNION ALL`` arm each).
BATCH_SIZE = 500

Key = tuple[str, str]


class MigrationTargetError(ValueError):
    """``app_label``/``migration_name`` name nothing ``migrate`` can run, or the graph conflicts."""


@dataclass(frozen=True, slots=True)
class PendingTenants:
    """The tenants to migrate and those already current; ``why`` says how it was decided."""

    pending: list[Any]
    up_to_date: list[Any] = field(default_factory=list)
    why: str = ""
    checked: bool = False  # False: the state could not be checked, every tenant is pending
    seconds: float = 0.0
    template_pending: bool = False  # TEMPLATE_SCHEMA is behind too (or was not checked)


def expected_migrations(
    app_label: str | None = None, migration_name: str | None = None
) -> tuple[frozenset[Key] | None, str]:
    """``(rows, why)``: the ``django_migrations`` rows of a tenant ``migrate`` would not touch.

    ``(None, why)`` when that depends on each tenant's history (migrating backwards, or to a
    migration that is not its app's latest): every tenant must then be migrated.
    """
    loader = MigrationLoader(None)
    conflicts = loader.detect_conflicts()
    if conflicts:
        shown = "; ".join(f"{', '.join(names)} in {app}" for app, names in conflicts.items())
        raise MigrationTargetError(
            f"Conflicting migrations detected ({shown}); run `manage.py makemigrations --merge`."
        )
    targets, why = _targets(loader, app_label, migration_name)
    if targets is None:
        return None, why
    nodes = {node for target in targets for node in loader.graph.forwards_plan(target)}
    return frozenset(_recorded(loader, nodes)), why


def _targets(
    loader: MigrationLoader, app_label: str | None, migration_name: str | None
) -> tuple[list[Key] | None, str]:
    """The nodes ``migrate [app_label [migration_name]]`` targets, chosen as Django does."""
    leaves: list[Key] = loader.graph.leaf_nodes()
    if app_label is None:
        return leaves, "every app at its latest migration"
    try:
        apps.get_app_config(app_label)
    except LookupError as err:
        raise MigrationTargetError(f"{err} Check the app_label argument.") from err
    if app_label not in loader.migrated_apps:
        raise MigrationTargetError(f"App {app_label!r} does not have migrations.")
    if migration_name is None:
        return [k for k in leaves if k[0] == app_label], f"{app_label} at its latest migration"
    if migration_name == "zero":
        return None, f"migrating {app_label} to zero unapplies migrations"
    try:
        name = loader.get_migration_by_prefix(app_label, migration_name).name
    except AmbiguityError as err:
        raise MigrationTargetError(
            f"More than one migration matches {migration_name!r} in app {app_label!r}; "
            "give more of its name."
        ) from err
    except KeyError as err:
        raise MigrationTargetError(
            f"Cannot find a migration matching {migration_name!r} from app {app_label!r}."
        ) from err
    target = (app_label, name)
    if target not in loader.graph.nodes:
        return None, f"{app_label}.{name} is replaced by a squashed migration"
    if any(child[0] == app_label for child in loader.graph.node_map[target].children):
        return None, (
            f"{app_label}.{name} is not {app_label}'s latest migration (tenants past it go "
            "backwards)"
        )
    return [target], f"{app_label} at {name}"


def _recorded(loader: MigrationLoader, nodes: Iterable[Key]) -> set[Key]:
    """The rows applying ``nodes`` leaves.

    A squashed migration records itself and every migration it replaces, recursively (Django's
    ``record_migration`` and ``check_replacements``).
    """
    rows: set[Key] = set()
    todo = list(nodes)
    while todo:
        key = todo.pop()
        if key in rows:
            continue
        rows.add(key)
        replacing = loader.replacements.get(key)
        if replacing is not None:
            todo.extend((app, name) for app, name in replacing.replaces)
    return rows


_WITH_TABLE = """
SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
 WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p')
   AND has_table_privilege(c.oid, 'SELECT') AND n.nspname = ANY(%s)
"""


def _batch_query(schemas: Sequence[str]) -> sql.Composed:
    """One arm per schema: how many expected rows its ``django_migrations`` lacks."""
    arm = sql.SQL(
        "SELECT {i}, count(*) FROM expected e WHERE NOT EXISTS "
        "(SELECT FROM {table} m WHERE m.app = e.app AND m.name = e.name)"
    )
    arms = [
        arm.format(i=sql.Literal(i), table=sql.Identifier(schema, "django_migrations"))
        for i, schema in enumerate(schemas)
    ]
    head = sql.SQL(
        "WITH expected(app, name) AS MATERIALIZED (SELECT * FROM unnest(%s::text[], %s::text[]))\n"
    )
    return head + sql.SQL("\nUNION ALL\n").join(arms)


def pending_schemas(
    schemas: Iterable[str],
    expected: frozenset[Key],
    *,
    alias: str | None = None,
    batch_size: int = BATCH_SIZE,
) -> set[str]:
    """The ``schemas`` whose ``django_migrations`` lacks a row of ``expected``, or is missing.

    One catalog query, then one query per ``batch_size`` schemas, on ``alias`` (the master).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    names = list(dict.fromkeys(schemas))
    rows = sorted(expected)
    params = [[app for app, _ in rows], [name for _, name in rows]]
    connection = connections[alias or get_config().MASTER_DB_ALIAS]
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(_WITH_TABLE, [names])
        readable = {row[0] for row in cursor.fetchall()}
        pending = {s for s in names if s not in readable}
        checked = [s for s in names if s in readable]
        raw = cursor.cursor.connection
        for start in range(0, len(checked), batch_size):
            chunk = checked[start : start + batch_size]
            cursor.execute(_batch_query(chunk).as_string(raw), params)
            pending.update(chunk[i] for i, missing in cursor.fetchall() if missing)
    return pending


def find_pending_tenants(
    tenants: Iterable[BaseTenant],
    app_label: str | None = None,
    migration_name: str | None = None,
    *,
    template: str | None = None,
) -> PendingTenants:
    """Split ``tenants`` into those ``migrate [app_label [migration_name]]`` would change and not.

    Database tenants are always pending (their tables live elsewhere); the ``template`` schema
    is checked with the others. Raises :class:`MigrationTargetError` when the arguments name
    nothing to migrate, and ``DatabaseError`` when the check cannot read the catalog.
    """

    start = time.perf_counter()
    tenants = list(tenants)
    expected, why = expected_migrations(app_label, migration_name)
    if expected is None:
        return PendingTenants(
            tenants, why=why, seconds=time.perf_counter() - start, template_pending=bool(template)
        )
    schemas: dict[str, str] = {}
    for tenant in tenants:
        backend = get_tenant_backend(tenant)
        if isinstance(backend, SchemaTenantBackend):
            schemas[tenant.tenant_id] = backend.schema_name
    behind = pending_schemas([*schemas.values(), *([template] if template else [])], expected)
    pending: list[Any] = []
    current: list[Any] = []
    for tenant in tenants:
        schema = schemas.get(tenant.tenant_id)
        (current if schema is not None and schema not in behind else pending).append(tenant)
    return PendingTenants(
        pending,
        current,
        why=why,
        checked=True,
        seconds=time.perf_counter() - start,
        template_pending=template in behind,
    )
