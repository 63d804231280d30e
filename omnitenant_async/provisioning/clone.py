"""Provision schema tenants by cloning a migrated template schema (``TEMPLATE_SCHEMA``).

The template is an ordinary schema migrated like a tenant (``migratealltenants`` migrates it
first; ``migratetenant --template`` alone). When its ``django_migrations`` leaves nothing for
the project's migration graph to apply, a new tenant is a copy of it, made server-side in one
transaction by a script generated from the template's catalog (then cached per process, keyed by
the template's applied migrations):

1. functions (``pg_get_functiondef``), standalone sequences (same type/start/increment/...),
2. tables: ``CREATE TABLE t (LIKE template.t INCLUDING DEFAULTS, CONSTRAINTS, IDENTITY,
   GENERATED, STORAGE, COMPRESSION, STATISTICS, COMMENTS)``: columns, types, NOT NULL, CHECK
   constraints, identity columns with *new* sequences, column and check comments;
3. defaults that named a template object (``nextval('template.seq')``) re-set to the new one,
   sequences ``OWNED BY`` the new columns,
4. data: every row of the template's tables, i.e. what its migrations (data migrations,
   ``django_migrations``) and ``post_migrate`` (content types, permissions) wrote; then each
   sequence set to the template's value (what a freshly migrated tenant has),
5. primary keys, unique and exclusion constraints, other indexes (same names and definitions),
   foreign keys re-targeted into the new schema, views, triggers, and the comments on tables,
   views, sequences, indexes, constraints and triggers.

The catalog definitions are read with only the template on the ``search_path``, so PostgreSQL
prints names of the template's own objects unqualified (the few it always qualifies lose the
template prefix), and the script runs with only the new schema on the ``search_path``:
references land in the new schema, references to other schemas (``public``) are kept.

Objects the script does not know how to copy (types, domains, partitioned or foreign tables,
rules, row-level security policies, aggregates, extensions' members...) make
:func:`clone_plan` return ``None`` with the reason: ``create()`` then migrates instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from django.core.management import call_command
from django.db import connections, transaction
from psycopg import sql

from ..conf import get_config
from ..context import TenantState, tenant_context, use_master_db

__all__ = ["ClonePlan", "clone_plan", "migrate_template", "template_state"]

logger = logging.getLogger("omnitenant_async.provisioning")

_LIKE = (
    "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED "
    "INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING STATISTICS INCLUDING COMMENTS"
)


@dataclass(frozen=True, slots=True)
class ClonePlan:
    """A tenant-independent script that fills the schema first on the ``search_path``."""

    template: str
    script: str
    tables: int

    def statement(self, schema: str, connection: Any) -> str:
        """``CREATE SCHEMA`` + the script, for one round trip in one transaction."""
        head = sql.SQL(
            "CREATE SCHEMA {s}; SET LOCAL search_path = {s}; SET LOCAL check_function_bodies = off;"
        ).format(s=sql.Identifier(schema))
        return head.as_string(connection) + "\n" + self.script


_lock = threading.Lock()
# (alias, template, applied rows) -> the plan, or the reason there is none.
_plans: dict[tuple[str, str, frozenset[tuple[str, str]]], ClonePlan | str] = {}


def template_state(template: str) -> TenantState:
    """The state the template is migrated in: only its schema on the path, like a tenant."""
    return TenantState(template, schema_name=template, include_public=False)


def _raw(cursor: Any) -> Any:
    return cursor.cursor.connection


def _applied(cursor: Any, template: str) -> frozenset[tuple[str, str]] | None:
    table = sql.Identifier(template, "django_migrations").as_string(_raw(cursor))
    cursor.execute("SELECT to_regclass(%s)", [table])
    row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    cursor.execute(f"SELECT app, name FROM {table}")
    return frozenset((app, name) for app, name in cursor.fetchall())


def _unapplied(alias: str, template: str) -> list[str]:
    """The migrations ``migrate`` would still apply to the template (the graph is read once)."""
    from django.db.migrations.executor import MigrationExecutor

    with tenant_context(template_state(template)):
        executor = MigrationExecutor(connections[alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def clone_plan(alias: str | None = None) -> tuple[ClonePlan | None, str]:
    """``(plan, why)``: the clone script if the template is current, else ``None`` and why."""
    config = get_config()
    template = config.TEMPLATE_SCHEMA
    if not template:
        return None, "no TEMPLATE_SCHEMA configured"
    alias = alias or config.MASTER_DB_ALIAS
    connection = connections[alias]
    with use_master_db(), connection.cursor() as cursor:
        applied = _applied(cursor, template)
    if applied is None:
        return None, (
            f"template schema {template!r} is missing or not migrated (run `manage.py "
            "migratetenant --template`)"
        )
    key = (alias, template, applied)
    with _lock:
        cached = _plans.get(key)
    if cached is None:
        pending = _unapplied(alias, template)
        if pending:
            shown = ", ".join(pending[:3]) + (" ..." if len(pending) > 3 else "")
            cached = (
                f"template schema {template!r} is not current ({len(pending)} unapplied "
                f"migration(s): {shown}; run `manage.py migratetenant --template`)"
            )
        else:
            try:
                cached = _generate(alias, template)
            except _Unsupported as err:
                cached = f"template schema {template!r} holds {err}, which cloning cannot copy"
        with _lock:
            _plans[key] = cached
    if isinstance(cached, str):
        return None, cached
    return cached, f"cloned from template schema {template!r}"


def forget_plans() -> None:
    """Drop the cached scripts (the template was changed outside the migration commands)."""
    with _lock:
        _plans.clear()


def migrate_template(
    app_label: str | None = None,
    migration_name: str | None = None,
    *,
    verbosity: int = 0,
    stdout: TextIO | None = None,
) -> str:
    """Create the template schema if needed and migrate it; return its name."""
    import io

    config = get_config()
    template = config.TEMPLATE_SCHEMA
    if not template:
        raise ValueError("OMNITENANT_CONFIG['TEMPLATE_SCHEMA'] is not set.")
    connection = connections[config.MASTER_DB_ALIAS]
    with use_master_db(), connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
            .format(sql.Identifier(template))
            .as_string(_raw(cursor))
        )
    args = [a for a in (app_label, migration_name) if a]
    with tenant_context(template_state(template)):
        call_command(
            "migrate",
            *args,
            database=config.MASTER_DB_ALIAS,
            interactive=False,
            verbosity=verbosity,
            skip_checks=True,
            stdout=stdout or io.StringIO(),
        )
    return template


class _Unsupported(Exception):
    pass


def _rows(cursor: Any, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    cursor.execute(query, params)
    return list(cursor.fetchall())


_UNSUPPORTED_QUERY = """
SELECT 'relation ' || c.relname || ' of kind ' || c.relkind::text FROM pg_class c
 WHERE c.relnamespace = %(ns)s AND c.relkind NOT IN ('r', 'v', 'm', 'S', 'i')
UNION ALL SELECT 'type ' || t.typname FROM pg_type t
 WHERE t.typnamespace = %(ns)s AND t.typrelid = 0 AND t.typelem = 0
UNION ALL SELECT 'rule ' || r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
 WHERE c.relnamespace = %(ns)s AND r.rulename <> '_RETURN'
UNION ALL SELECT 'policy ' || p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = %(ns)s
UNION ALL SELECT 'row-level security on ' || c.relname FROM pg_class c
 WHERE c.relnamespace = %(ns)s AND c.relrowsecurity
UNION ALL SELECT 'function ' || p.proname || ' of kind ' || p.prokind::text FROM pg_proc p
 WHERE p.pronamespace = %(ns)s AND p.prokind NOT IN ('f', 'p')
UNION ALL SELECT 'extension member ' || d.objid::text FROM pg_depend d
 JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
 WHERE c.relnamespace = %(ns)s AND d.deptype = 'e'
UNION ALL SELECT 'collation ' || collname FROM pg_collation WHERE collnamespace = %(ns)s
UNION ALL SELECT 'operator ' || oprname FROM pg_operator WHERE oprnamespace = %(ns)s
"""


def _generate(alias: str, template: str) -> ClonePlan:
    connection = connections[alias]
    with use_master_db(), transaction.atomic(using=alias), connection.cursor() as cursor:
        raw = _raw(cursor)
        tmpl = sql.Identifier(template)
        # Catalog texts print the template's own objects unqualified.
        cursor.execute(sql.SQL("SET LOCAL search_path = {}").format(tmpl).as_string(raw))
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [template])
        (ns,) = cursor.fetchone()
        unsupported = _rows(cursor, _UNSUPPORTED_QUERY, {"ns": ns})  # type: ignore[arg-type]
        if unsupported:
            raise _Unsupported(", ".join(r[0] for r in unsupported[:5]))
        cursor.execute("SELECT quote_ident(%s)", [template])  # as PostgreSQL prints it
        prefix = cursor.fetchone()[0] + "."

        def text(definition: str) -> sql.Composable:
            return sql.SQL(definition.replace(prefix, "").replace("{", "{{").replace("}", "}}"))

        def ident(name: str) -> sql.Identifier:
            return sql.Identifier(name)

        out: list[sql.Composable] = []
        # 1. functions (bodies are not checked: check_function_bodies = off, like pg_dump)
        for (definition,) in _rows(
            cursor,
            "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = %s ORDER BY oid",
            [ns],
        ):
            out.append(text(definition))
        # 2. standalone sequences (identity ones come with their tables)
        sequences = _rows(
            cursor,
            """SELECT c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin,
                      s.seqmax, s.seqstart, s.seqcache, s.seqcycle,
                      (SELECT t.relname || '.' || quote_ident(a.attname) FROM pg_depend d
                         JOIN pg_class t ON t.oid = d.refobjid
                         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a')
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
                WHERE c.relnamespace = %s AND NOT EXISTS (
                      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                         AND d.objid = c.oid AND d.deptype = 'i')
                ORDER BY c.relname""",
            [ns],
        )
        for name, typ, inc, mn, mx, start, cache, cycle, _owner in sequences:
            out.append(
                sql.SQL(
                    "CREATE SEQUENCE {} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} "
                    "START WITH {} CACHE {} {}"
                ).format(
                    ident(name),
                    sql.SQL(typ),
                    sql.Literal(inc),
                    sql.Literal(mn),
                    sql.Literal(mx),
                    sql.Literal(start),
                    sql.Literal(cache),
                    sql.SQL("CYCLE" if cycle else "NO CYCLE"),
                )  # fmt: skip
            )
        # 3. tables
        tables = _rows(
            cursor,
            """SELECT c.relname, c.relpersistence, array_to_string(c.reloptions, ', '),
                      EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '')
                 FROM pg_class c WHERE c.relnamespace = %s AND c.relkind = 'r'
                ORDER BY c.relname""",
            [ns],
        )
        for name, persistence, options, _generated in tables:
            out.append(
                sql.SQL("CREATE {}TABLE {} (LIKE {} {}){}").format(
                    sql.SQL("UNLOGGED " if persistence == "u" else ""),
                    ident(name),
                    sql.Identifier(template, name),
                    sql.SQL(_LIKE),
                    sql.SQL(f" WITH ({options})" if options else ""),
                )
            )
        # 4. defaults that point at a template object (a sequence, a function)
        for table, column, default in _rows(
            cursor,
            """SELECT c.relname, a.attname, pg_get_expr(ad.adbin, ad.adrelid)
                 FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid
                 JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' AND EXISTS (
                      SELECT 1 FROM pg_depend d
                       WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                         AND d.refobjid <> ad.adrelid AND (
                             (d.refclassid = 'pg_class'::regclass AND EXISTS (
                                 SELECT 1 FROM pg_class r
                                  WHERE r.oid = d.refobjid AND r.relnamespace = %(ns)s))
                          OR (d.refclassid = 'pg_proc'::regclass AND EXISTS (
                                 SELECT 1 FROM pg_proc p
                                  WHERE p.oid = d.refobjid AND p.pronamespace = %(ns)s))))
                ORDER BY 1, 2""",
            {"ns": ns},  # type: ignore[arg-type]
        ):
            out.append(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                    ident(table), ident(column), text(default)
                )
            )
        # LIKE makes identity sequences bigint whatever the column: restore the type.
        for name, typ in _rows(
            cursor,
            """SELECT c.relname, format_type(s.seqtypid, NULL)
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
                WHERE c.relnamespace = %s AND s.seqtypid <> 'int8'::regtype AND EXISTS (
                      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                         AND d.objid = c.oid AND d.deptype = 'i')
                ORDER BY c.relname""",
            [ns],
        ):
            out.append(sql.SQL("ALTER SEQUENCE {} AS {}").format(ident(name), sql.SQL(typ)))
        for name, *_rest, owner in sequences:
            if owner:
                out.append(
                    sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(ident(name), text(owner))
                )
        # 5. data written by the migrations, then the sequences where the template has them
        filled = _filled_tables(cursor, template, [t[0] for t in tables])
        for table, columns in _rows(
            cursor,
            """SELECT c.relname, array_agg(a.attname ORDER BY a.attnum)
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE c.relnamespace = %s AND c.relkind = 'r' AND c.relname = ANY(%s)
                  AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                GROUP BY c.relname ORDER BY c.relname""",
            [ns, filled],
        ):
            cols = sql.SQL(", ").join(ident(c) for c in columns)
            out.append(
                sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
                    ident(table), cols, cols, sql.Identifier(template, table)
                )
            )
        for name, value in _rows(
            cursor,
            "SELECT sequencename, last_value FROM pg_sequences "
            "WHERE schemaname = %s AND last_value IS NOT NULL ORDER BY 1",
            [template],
        ):
            out.append(
                sql.SQL("SELECT setval({}, {}, true)").format(
                    sql.Literal(ident(name).as_string(raw)), sql.Literal(value)
                )
            )
        # 6. constraints with their own index, then the other indexes, then foreign keys
        constraints = _rows(
            cursor,
            """SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                WHERE c.relnamespace = %s AND c.relkind = 'r'
                  AND con.contype IN ('p', 'u', 'x', 'f')
                ORDER BY con.contype = 'f', c.relname, con.conname""",
            [ns],
        )
        indexes = _rows(
            cursor,
            """SELECT pg_get_indexdef(i.indexrelid), t.relkind FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_class t ON t.oid = i.indrelid AND t.relkind IN ('r', 'm')
                WHERE ic.relnamespace = %s AND NOT EXISTS (
                      SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                         AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))
                ORDER BY t.relkind = 'm', ic.relname""",
            [ns],
        )
        for table, name, kind, definition in constraints:
            if kind != "f":
                out.append(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        ident(table), ident(name), text(definition)
                    )
                )
        for definition, on in indexes:
            if on == "r":
                out.append(text(definition))
        for table, name, kind, definition in constraints:
            if kind == "f":
                out.append(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        ident(table), ident(name), text(definition)
                    )
                )
        views = _rows(
            cursor,
            """SELECT c.relname, c.relkind, array_to_string(c.reloptions, ', '),
                      pg_get_viewdef(c.oid)
                 FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('v', 'm')
                ORDER BY c.oid""",
            [ns],
        )
        # 7. views (in creation order), their indexes, triggers
        for name, kind, options, definition in views:
            out.append(
                sql.SQL("CREATE {} {}{} AS {}").format(
                    sql.SQL("MATERIALIZED VIEW" if kind == "m" else "VIEW"),
                    ident(name),
                    sql.SQL(f" WITH ({options})" if options else ""),
                    text(definition.rstrip().rstrip(";")),
                )
            )
        for definition, on in indexes:
            if on == "m":
                out.append(text(definition))
        for (definition,) in _rows(
            cursor,
            """SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
                 JOIN pg_class c ON c.oid = t.tgrelid
                WHERE c.relnamespace = %s AND NOT t.tgisinternal ORDER BY c.relname, t.tgname""",
            [ns],
        ):
            out.append(text(definition))
        # 8. comments LIKE does not copy
        for statement in _comments(cursor, ns):
            out.append(sql.SQL(statement.replace("{", "{{").replace("}", "}}")))
        script = ";\n".join(s.as_string(raw) for s in out) + ";"
    return ClonePlan(template=template, script=script, tables=len(tables))


def _filled_tables(cursor: Any, template: str, tables: list[str]) -> list[str]:
    if not tables:
        return []
    raw = _raw(cursor)
    probe = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} WHERE EXISTS (SELECT 1 FROM {})").format(
            sql.Literal(t), sql.Identifier(template, t)
        )
        for t in tables
    )
    cursor.execute(probe.as_string(raw))
    return [row[0] for row in cursor.fetchall()]


def _comments(cursor: Any, ns: int) -> list[str]:
    """``COMMENT ON`` statements for what ``LIKE ... INCLUDING COMMENTS`` leaves out."""
    cursor.execute(
        """
        SELECT format('COMMENT ON %%s %%I IS %%L',
                      CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                           WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                           WHEN 'i' THEN 'INDEX' END, c.relname, d.description)
          FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
         WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relnamespace = %(ns)s
           AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend dep
                      WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
                        AND dep.deptype = 'i'))
        UNION ALL
        SELECT format('COMMENT ON COLUMN %%I.%%I IS %%L', c.relname, a.attname, d.description)
          FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
         WHERE d.classoid = 'pg_class'::regclass AND d.objsubid > 0
           AND c.relnamespace = %(ns)s AND c.relkind IN ('v', 'm')
        UNION ALL
        SELECT format('COMMENT ON CONSTRAINT %%I ON %%I IS %%L', con.conname, c.relname,
                      d.description)
          FROM pg_description d JOIN pg_constraint con ON con.oid = d.objoid
          JOIN pg_class c ON c.oid = con.conrelid
         WHERE d.classoid = 'pg_constraint'::regclass AND c.relnamespace = %(ns)s
           AND con.contype <> 'c'
        UNION ALL
        SELECT format('COMMENT ON TRIGGER %%I ON %%I IS %%L', t.tgname, c.relname, d.description)
          FROM pg_description d JOIN pg_trigger t ON t.oid = d.objoid
          JOIN pg_class c ON c.oid = t.tgrelid
         WHERE d.classoid = 'pg_trigger'::regclass AND c.relnamespace = %(ns)s
        UNION ALL
        SELECT format('COMMENT ON %%s %%s IS %%L',
                      CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                      p.oid::regprocedure, d.description)
          FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid
         WHERE d.classoid = 'pg_proc'::regclass AND p.pronamespace = %(ns)s
        """,
        {"ns": ns},
    )
    return [row[0] for row in cursor.fetchall()]
