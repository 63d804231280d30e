"""Provision schema tenants by cloning a migrated template schema (``TEMPLATE_SCHEMA``).

The template is an ordinary schema migrated like a tenant (``migratealltenants`` migrates it
first; ``migratetenant --template`` alone). When its ``django_migrations`` leaves nothing for
the project's migration graph to apply, a new tenant is a copy of it, made server-side in one
transaction by a script generated from the template's catalog (then cached per process, keyed by
the template's applied migrations):

1. functions (``pg_get_functiondef``), standalone sequences (same type/start/increment/...),
2. each table, parents first, in one statement: ``CREATE TABLE t (LIKE template.t INCLUDING
   DEFAULTS, CONSTRAINTS, IDENTITY, GENERATED, STORAGE, COMPRESSION, CONSTRAINT t_pkey PRIMARY
   KEY (id), CONSTRAINT ... FOREIGN KEY ... REFERENCES parent (id) ...)``: columns, types, NOT
   NULL, CHECK constraints (``LIKE`` copies their parsed form: their text would not always
   parse back to the same one), identity columns with *new* sequences, and the primary, unique,
   exclusion and foreign keys with the template's names and definitions; then the table's
   other indexes (``pg_get_indexdef``). Declared there, a foreign key costs no validation query
   (see :func:`_tables`); those of the tables that get rows, one that closes a cycle or
   references a unique index of its own table, and NOT VALID constraints wait for the rows,
3. defaults that named a template object (``nextval('template.seq')``) re-set to the new one,
   identity sequences' types, statistics targets and replica identities, ``OWNED BY``,
4. data: every row of the template's tables, i.e. what its migrations (data migrations,
   ``django_migrations``) and ``post_migrate`` (content types, permissions) wrote;
   then every sequence set to the template's value in one ``SELECT`` (what a freshly migrated
   tenant has),
5. the keys left from 2. (each checked against the rows by one query), extended statistics,
   views, indexes of materialized views, triggers, and every comment.
6. a check that the template's ``django_migrations`` still holds the rows the plan was made
   from: a migration of the template committed meanwhile aborts the clone (``create()`` then
   migrates), rather than leave a mix of two states.

The catalog definitions are read with only the template on the ``search_path``, so PostgreSQL
prints names of the template's own objects unqualified (the few it always qualifies lose the
template prefix), and the script runs with only the new schema on the ``search_path``:
references land in the new schema, references to other schemas (``public``) are kept.

Objects the script does not know how to copy (types, domains, partitioned or foreign tables,
rules, row-level security policies, aggregates, extensions' members...) make
:func:`clone_plan` return ``None`` with the reason: ``create()`` then migrates instead.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

from django.core.management import call_command
from django.db import connections, transaction
from psycopg import sql

from ..conf import get_config
from ..context import TenantState, tenant_context, use_master_db

__all__ = ["ClonePlan", "clone_plan", "migrate_template", "template_state"]

logger = logging.getLogger("omnitenant_async.provisioning")

# Comments and extended statistics are made by statements of their own: LIKE would look up
# each column's comment and name the statistics itself.
_LIKE = (
    "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED "
    "INCLUDING STORAGE INCLUDING COMPRESSION"
)


@dataclass(frozen=True, slots=True)
class ClonePlan:
    """A tenant-independent script that fills the schema first on the ``search_path``."""

    template: str
    script: str
    tables: int
    #: Names the template's state the script copies (its catalog and applied migrations): a
    #: spare schema made by this plan is stamped with it (provisioning/spares.py).
    digest: str = ""

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
                cached = _generate(alias, template, applied)
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
UNION ALL SELECT 'inheritance of ' || c.relname FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relnamespace = %(ns)s
"""


def applied_digest(applied: frozenset[tuple[str, str]]) -> str:
    """The md5 that :data:`_UNCHANGED_CHECK` computes server-side over the same rows."""
    rows = ",".join(f"{app}.{name}" for app, name in sorted(applied))
    return hashlib.md5(rows.encode(), usedforsecurity=False).hexdigest()


# The script's last statement: a migration of the template committed while the script ran
# (each statement reads the template afresh) would leave a mix of two states; abort instead.
_UNCHANGED_CHECK = """DO $check$ BEGIN
  IF (SELECT md5(string_agg(app || '.' || name, ',' ORDER BY app COLLATE "C", name COLLATE "C"))
        FROM {table}) IS DISTINCT FROM '{digest}' THEN
    RAISE EXCEPTION 'the template schema was migrated while it was being cloned';
  END IF;
END $check$"""


def _generate(
    alias: str, template: str, applied: frozenset[tuple[str, str]] | None = None
) -> ClonePlan:
    """Read the template's catalog and write the script (the module docstring lists its parts).

    With ``applied`` (the template's ``django_migrations`` rows), the script ends by checking
    that they did not change while it ran.
    """
    connection = connections[alias]
    with use_master_db(), transaction.atomic(using=alias), connection.cursor() as cursor:
        # Catalog texts print the template's own objects unqualified.
        cursor.execute(
            sql.SQL("SET LOCAL search_path = {}")
            .format(sql.Identifier(template))
            .as_string(_raw(cursor))
        )
        cursor.execute(
            "SELECT oid, quote_ident(nspname) FROM pg_namespace WHERE nspname = %s", [template]
        )
        ns, quoted = cursor.fetchone()
        catalog = _Catalog(cursor, ns, template, quoted)
        unsupported = catalog.rows(_UNSUPPORTED_QUERY)
        if unsupported:
            raise _Unsupported(", ".join(r[0] for r in unsupported[:5]))
        tables = _tables(catalog)
        statements = _statements(catalog, tables)
        if applied is not None:
            table = sql.Identifier(template, "django_migrations").as_string(_raw(cursor))
            check = _UNCHANGED_CHECK.format(table=table, digest=applied_digest(applied))
            statements.append(check)
    script = ";\n".join(statements) + ";"
    digest = hashlib.sha256(script.encode()).hexdigest()[:32]
    return ClonePlan(template=template, script=script, tables=len(tables), digest=digest)


class _Catalog:
    """The template's catalog, read in a transaction whose ``search_path`` is the template alone.

    ``quoted`` is the template's name as PostgreSQL quotes it; :meth:`text` strips the
    ``quoted.`` prefix that the few definitions that always qualify names (``pg_get_triggerdef``,
    ``pg_get_functiondef``...) print for the template's own objects.
    """

    def __init__(self, cursor: Any, ns: int, template: str, quoted: str) -> None:
        self.cursor, self.ns, self.template, self.quoted = cursor, ns, template, quoted

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        self.cursor.execute(query, {"ns": self.ns, "template": self.template})
        return list(self.cursor.fetchall())

    def text(self, definition: str) -> str:
        return definition.replace(self.quoted + ".", "")

    def texts(self, query: str, *, strip: bool = True) -> list[str]:
        """The first column of each row, as statements of the script."""
        return [self.text(row[0]) if strip else row[0] for row in self.rows(query)]


@dataclass(slots=True)
class _Table:
    """One table of the template: its ``CREATE TABLE`` and the keys that must wait for rows."""

    oid: int
    name: str  # quoted
    unlogged: bool
    options: str  # reloptions, "fillfactor=70, ..."
    columns: list[str] = field(default_factory=list)  # those an INSERT can write (not generated)
    filled: bool = False  # the template's table has rows
    keys: list[str] = field(default_factory=list)  # "CONSTRAINT name <definition>", inline
    before_data: list[str] = field(default_factory=list)  # ALTER TABLE ... DROP CONSTRAINT
    after_data: list[str] = field(default_factory=list)  # ALTER TABLE ... ADD CONSTRAINT

    def create(self, template: str) -> str:
        """``CREATE TABLE`` copying the columns (``LIKE``) and declaring the keys, at once."""
        elements = ", ".join([f"LIKE {template}.{self.name} {_LIKE}", *self.keys])
        options = f" WITH ({self.options})" if self.options else ""
        return (
            f"CREATE {'UNLOGGED ' if self.unlogged else ''}TABLE {self.name} ({elements}){options}"
        )


class _Constraint(NamedTuple):
    """A row of ``_CONSTRAINTS_QUERY``."""

    table: int
    name: str  # quoted
    kind: str  # pg_constraint.contype
    definition: str
    valid: bool
    references: int | None  # a foreign key's table, if it is in the template
    key_is_constraint: bool  # a foreign key's key is a primary key or unique constraint


def _statements(catalog: _Catalog, tables: list[_Table]) -> list[str]:
    """The script, in an order where everything a statement needs exists already.

    Each table is followed by its indexes, so that a table referenced later has all its keys
    (a foreign key may reference a unique index); the rows come once every table is there.
    """
    indexes = _indexes(catalog)
    sequences, owned_by = _sequences(catalog)
    out = [*catalog.texts(_FUNCTIONS_QUERY), *sequences]
    for t in tables:
        out.append(t.create(catalog.quoted))
        out += indexes.pop(t.oid, [])
        out += t.before_data
    out += _repointed_defaults(catalog)
    out += catalog.texts(_IDENTITY_TYPES_QUERY, strip=False)
    out += catalog.texts(_COLUMN_SETTINGS_QUERY, strip=False)
    out += owned_by
    out += _copy(catalog, tables)
    out += (statement for t in tables for statement in t.after_data)
    out += catalog.texts(_STATISTICS_QUERY)
    out += _views(catalog)
    out += (d for on_view in indexes.values() for d in on_view)  # on materialized views
    out += catalog.texts(_TRIGGERS_QUERY)
    out += catalog.texts(_COMMENTS_QUERY, strip=False)
    return out


def _tables(catalog: _Catalog) -> list[_Table]:
    """Every table with its keys declared in its ``CREATE TABLE``, parents first.

    One statement per table costs less than ``CREATE TABLE`` followed by an ``ALTER TABLE`` per
    key, and a foreign key declared in ``CREATE TABLE`` needs no validation query (the table is
    empty) where ``ALTER TABLE ... ADD FOREIGN KEY`` runs one. It can only be declared there
    once the key it references exists, so parents come first. Added after the rows instead,
    with ``ALTER TABLE``: the foreign keys of the tables that get rows (checked by one query
    each rather than row by row, and no check left pending to block the ``ALTER TABLE``
    statements that follow), one that closes a cycle or references a unique index of its own
    table (made after it), and any ``NOT VALID`` constraint (``CREATE TABLE`` and ``LIKE``
    would make it valid).
    """
    tables = {
        oid: _Table(oid, name, persistence == "u", options or "", columns)
        for oid, name, persistence, options, columns in catalog.rows(_TABLES_QUERY)
    }
    for oid in _filled(catalog, list(tables.values())):
        tables[oid].filled = True
    constraints = [_Constraint(*row) for row in catalog.rows(_CONSTRAINTS_QUERY)]
    parents: dict[int, set[int]] = {oid: set() for oid in tables}
    for c in constraints:
        if c.valid and not tables[c.table].filled and c.references not in (None, c.table):
            parents[c.table].add(c.references)
    order = _parents_first(list(tables), parents)
    position = {oid: i for i, oid in enumerate(order)}
    for c in constraints:
        table = tables[c.table]
        constraint = f"CONSTRAINT {c.name} {catalog.text(c.definition)}"
        if c.kind == "c":  # a NOT VALID check, which LIKE copied as valid: not yet
            table.before_data.append(f"ALTER TABLE {table.name} DROP CONSTRAINT {c.name}")
            table.after_data.append(f"ALTER TABLE {table.name} ADD {constraint}")
        elif c.kind != "f" or (
            c.valid
            and not table.filled
            and (
                c.references is None
                or position[c.references] < position[c.table]
                or (c.references == c.table and c.key_is_constraint)
            )
        ):
            table.keys.append(constraint)
        else:
            table.after_data.append(f"ALTER TABLE {table.name} ADD {constraint}")
    return [tables[oid] for oid in order]


def _filled(catalog: _Catalog, tables: list[_Table]) -> set[int]:
    """The tables of the template that hold rows, in one query."""
    if not tables:
        return set()
    probe = " UNION ALL ".join(
        f"SELECT {t.oid} WHERE EXISTS (SELECT 1 FROM {catalog.quoted}.{t.name})" for t in tables
    )
    return {row[0] for row in catalog.rows(probe.replace("%", "%%"))}


def _parents_first(tables: list[int], parents: dict[int, set[int]]) -> list[int]:
    """``tables`` reordered so that each follows its ``parents``, otherwise kept in order.

    When every table left waits for another (a cycle), the first of them goes next: its foreign
    keys to tables not placed yet are added after the rows (see :func:`_tables`).
    """
    order: list[int] = []
    placed: set[int] = set()
    pending = tables
    while pending:
        ready = [t for t in pending if parents[t] <= placed] or pending[:1]
        order += ready
        placed.update(ready)
        pending = [t for t in pending if t not in placed]
    return order


def _indexes(catalog: _Catalog) -> dict[int, list[str]]:
    """The indexes no constraint made, by table (or materialized view) oid."""
    out: dict[int, list[str]] = {}
    for on, definition in catalog.rows(_INDEXES_QUERY):
        out.setdefault(on, []).append(catalog.text(definition))
    return out


def _sequences(catalog: _Catalog) -> tuple[list[str], list[str]]:
    """Standalone sequences (identity ones come with their tables), and their ``OWNED BY``."""
    creates, owned_by = [], []
    for name, typ, inc, minimum, maximum, start, cache, cycle, owner in catalog.rows(
        _SEQUENCES_QUERY
    ):
        creates.append(
            f"CREATE SEQUENCE {name} AS {typ} INCREMENT BY {inc} MINVALUE {minimum} "
            f"MAXVALUE {maximum} START WITH {start} CACHE {cache} {'' if cycle else 'NO '}CYCLE"
        )
        if owner:
            owned_by.append(f"ALTER SEQUENCE {name} OWNED BY {owner}")
    return creates, owned_by


def _repointed_defaults(catalog: _Catalog) -> list[str]:
    """``LIKE`` copies defaults as they are: one that names a template object (its sequence,
    its function) is set again from its text, which then names the new schema's."""
    return [
        f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {catalog.text(default)}"
        for table, column, default in catalog.rows(_REPOINTED_DEFAULTS_QUERY)
    ]


def _copy(catalog: _Catalog, tables: list[_Table]) -> list[str]:
    """Copy the template's rows, then set every sequence to the template's value."""
    out = []
    for t in tables:
        if t.filled:
            columns = ", ".join(t.columns)
            out.append(
                f"INSERT INTO {t.name} ({columns}) OVERRIDING SYSTEM VALUE "
                f"SELECT {columns} FROM {catalog.quoted}.{t.name}"
            )
    values = catalog.texts(_SETVAL_QUERY, strip=False)
    if values:
        out.append("SELECT " + ", ".join(values))  # one statement for all of them
    return out


def _views(catalog: _Catalog) -> list[str]:
    """Views and materialized views in creation order (a view may select from an earlier one)."""
    out = []
    for name, kind, options, definition in catalog.rows(_VIEWS_QUERY):
        what = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
        with_options = f" WITH ({options})" if options else ""
        body = catalog.text(definition.rstrip().rstrip(";"))
        out.append(f"CREATE {what} {name}{with_options} AS {body}")
    return out


# Function bodies are not checked (check_function_bodies = off, like pg_dump).
_FUNCTIONS_QUERY = """
SELECT pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = %(ns)s ORDER BY oid
"""

# Each table with the columns an INSERT can write (generated ones are computed).
_TABLES_QUERY = """
SELECT c.oid, quote_ident(c.relname), c.relpersistence::text,
       array_to_string(c.reloptions, ', '),
       ARRAY(SELECT quote_ident(a.attname) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = '' ORDER BY a.attnum)
  FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' ORDER BY c.relname
"""

# Keys (primary, unique, exclusion, then foreign) and the NOT VALID checks (LIKE copies the
# valid ones), each with: valid? the table a foreign key references if it is in the template,
# and whether that key is a constraint (declared with its table) rather than a unique index
# (made just after it).
_CONSTRAINTS_QUERY = """
SELECT con.conrelid, quote_ident(con.conname), con.contype::text, pg_get_constraintdef(con.oid),
       con.convalidated,
       CASE WHEN r.relnamespace = %(ns)s THEN con.confrelid END,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = con.confrelid
                  AND k.conindid = con.conindid AND k.contype IN ('p', 'u'))
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
  LEFT JOIN pg_class r ON r.oid = con.confrelid
 WHERE c.relnamespace = %(ns)s AND c.relkind = 'r'
   AND (con.contype IN ('p', 'u', 'x', 'f') OR (con.contype = 'c' AND NOT con.convalidated))
 ORDER BY con.contype = 'f', c.relname, con.conname
"""

_INDEXES_QUERY = """
SELECT i.indrelid, pg_get_indexdef(i.indexrelid) FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid AND t.relkind IN ('r', 'm')
 WHERE ic.relnamespace = %(ns)s AND NOT EXISTS (
       SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
          AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))
 ORDER BY ic.relname
"""

# Standalone sequences: not an identity's own (pg_depend type 'i'); OWNED BY from type 'a'.
_SEQUENCES_QUERY = """
SELECT quote_ident(c.relname), format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin,
       s.seqmax, s.seqstart, s.seqcache, s.seqcycle,
       (SELECT quote_ident(t.relname) || '.' || quote_ident(a.attname) FROM pg_depend d
          JOIN pg_class t ON t.oid = d.refobjid
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = %(ns)s AND NOT EXISTS (
       SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
          AND d.objid = c.oid AND d.deptype = 'i')
 ORDER BY c.relname
"""

# Defaults that depend on a sequence or function of the template.
_REPOINTED_DEFAULTS_QUERY = """
SELECT quote_ident(c.relname), quote_ident(a.attname), pg_get_expr(ad.adbin, ad.adrelid)
  FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid
  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
 WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' AND EXISTS (
       SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
          AND d.refobjid <> ad.adrelid AND (
              (d.refclassid = 'pg_class'::regclass AND EXISTS (
                  SELECT 1 FROM pg_class r WHERE r.oid = d.refobjid AND r.relnamespace = %(ns)s))
           OR (d.refclassid = 'pg_proc'::regclass AND EXISTS (
                  SELECT 1 FROM pg_proc p WHERE p.oid = d.refobjid AND p.pronamespace = %(ns)s))))
 ORDER BY 1, 2
"""

# LIKE makes every identity sequence bigint (PostgreSQL 15): restore the others' type.
_IDENTITY_TYPES_QUERY = """
SELECT format('ALTER SEQUENCE %%I AS %%s', c.relname, format_type(s.seqtypid, NULL))
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = %(ns)s AND s.seqtypid <> 'int8'::regtype AND EXISTS (
       SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
          AND d.objid = c.oid AND d.deptype = 'i')
 ORDER BY c.relname
"""

_STATISTICS_QUERY = """
SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext
 WHERE stxnamespace = %(ns)s ORDER BY stxname
"""

_SETVAL_QUERY = """
SELECT format('setval(%%L, %%s, true)', quote_ident(sequencename), last_value)
  FROM pg_sequences WHERE schemaname = %(template)s AND last_value IS NOT NULL ORDER BY 1
"""

# What LIKE does not copy: per-column statistics targets and options, the replica identity.
_COLUMN_SETTINGS_QUERY = """
SELECT format('ALTER TABLE %%I ALTER COLUMN %%I SET STATISTICS %%s', c.relname, a.attname,
              a.attstattarget)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attstattarget >= 0
UNION ALL
SELECT format('ALTER TABLE %%I ALTER COLUMN %%I SET (%%s)', c.relname, a.attname,
              array_to_string(a.attoptions, ', '))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
   AND a.attoptions IS NOT NULL
UNION ALL
SELECT format('ALTER TABLE %%I REPLICA IDENTITY %%s', c.relname,
              CASE c.relreplident WHEN 'n' THEN 'NOTHING' WHEN 'f' THEN 'FULL'
                   ELSE (SELECT 'USING INDEX ' || quote_ident(ic.relname) FROM pg_index i
                           JOIN pg_class ic ON ic.oid = i.indexrelid
                          WHERE i.indrelid = c.oid AND i.indisreplident) END)
  FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind = 'r' AND c.relreplident <> 'd'
"""

_VIEWS_QUERY = """
SELECT quote_ident(c.relname), c.relkind::text, array_to_string(c.reloptions, ', '),
       pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind IN ('v', 'm')
 ORDER BY c.oid
"""

_TRIGGERS_QUERY = """
SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = %(ns)s AND NOT t.tgisinternal ORDER BY c.relname, t.tgname
"""

# Every comment, except on identity sequences (LIKE chooses their names).
_COMMENTS_QUERY = """
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
 WHERE d.classoid = 'pg_class'::regclass AND d.objsubid > 0 AND c.relnamespace = %(ns)s
UNION ALL
SELECT format('COMMENT ON CONSTRAINT %%I ON %%I IS %%L', con.conname, c.relname, d.description)
  FROM pg_description d JOIN pg_constraint con ON con.oid = d.objoid
  JOIN pg_class c ON c.oid = con.conrelid
 WHERE d.classoid = 'pg_constraint'::regclass AND c.relnamespace = %(ns)s
UNION ALL
SELECT format('COMMENT ON STATISTICS %%I IS %%L', s.stxname, d.description)
  FROM pg_description d JOIN pg_statistic_ext s ON s.oid = d.objoid
 WHERE d.classoid = 'pg_statistic_ext'::regclass AND s.stxnamespace = %(ns)s
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
"""
