"""The ``search_path`` a tenant state wants, and the statement that sets it.

Shared by the session mode (``search_path``) and the transaction-pooler mode
(``local_path``), so both agree on what a tenant's path is and how it is set.
"""

from __future__ import annotations

import functools

from psycopg import sql

from ...conf import get_config
from ...context import PUBLIC_SCHEMA, TenantState

Path = tuple[str, ...]

PUBLIC_PATH: Path = (PUBLIC_SCHEMA,)


def wanted_path(state: TenantState | None) -> Path:
    """The search_path for a state; the public schema when no tenant is active.

    Tenant-scoped tables never exist in ``public`` (the router keeps them out), so a query
    that slips past the router with no tenant fails instead of reading another tenant's rows.
    """
    if state is None or state.schema_name == PUBLIC_SCHEMA:
        return PUBLIC_PATH
    if not state.include_public:
        return (state.schema_name,)
    return (state.schema_name, *get_config().EXTRA_SEARCH_PATHS, PUBLIC_SCHEMA)


def guarded_schema(path: Path) -> str | None:
    """The schema whose existence the path depends on (``None`` for public)."""
    return None if path == PUBLIC_PATH else path[0]


def schema_literal(schema_name: str) -> sql.Composable:
    """``'"name"'``: what ``::regnamespace`` parses (an identifier, so quoted first)."""
    return sql.Literal(sql.Identifier(schema_name).as_string(None))


#: Statements cached per path: one per tenant in use. Composing one with psycopg.sql costs
#: ~24 µs, and a cache smaller than the tenants a process serves misses on every request once
#: they rotate (LRU); 16,384 (a few MB) covers REGISTRY_MAX_ENTRIES' default of 10,000.
STATEMENT_CACHE_SIZE = 16_384


def path_value(path: Path) -> str:
    """``'"t01", "public"'`` without the quotes: the value ``search_path`` is set to."""
    return ", ".join(sql.Identifier(name).as_string(None) for name in path)


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def set_statement(path: Path, *, local: bool = False) -> str:
    """The statement that sets ``path``, and fails if the tenant's schema is gone.

    ``SELECT set_config('search_path', '"t01", "public"', false) WHERE '"t01"'::regnamespace
    IS NOT NULL``: the cast is resolved when the statement is parsed, so a dropped schema is
    an error (``invalid_schema_name``) instead of a path PostgreSQL would silently shorten to
    ``public``. One statement does both, so the check costs no extra result to read.
    ``local=True`` is ``SET LOCAL``: the value ends with the transaction.
    """
    statement = sql.SQL("SELECT set_config('search_path', {}, {})").format(
        sql.Literal(path_value(path)), sql.Literal(local)
    )
    schema = guarded_schema(path)
    if schema is not None:
        statement += sql.SQL(" WHERE {}::regnamespace IS NOT NULL").format(schema_literal(schema))
    return statement.as_string(None)


#: ``set_statement(path, local=True)`` with placeholders, for a query sent with parameters:
#: the same text for every tenant, so psycopg's cache of parsed query texts (its 128 most
#: recent) still holds one entry per query, not one per tenant and query. Positional
#: (``%s``) and named (``%(name)s``) forms, as the query's own parameters are.
SET_LOCAL_CHECKED = (
    "SELECT set_config('search_path', %s, true) WHERE %s::regnamespace IS NOT NULL; ",
    "SELECT set_config('search_path', %(omnitenant_path)s, true) "
    "WHERE %(omnitenant_schema)s::regnamespace IS NOT NULL; ",
)
SET_LOCAL_PUBLIC = (
    "SELECT set_config('search_path', %s, true); ",
    "SELECT set_config('search_path', %(omnitenant_path)s, true); ",
)


def set_parameters(path: Path) -> tuple[str, ...]:
    """The values of ``SET_LOCAL_CHECKED`` (``SET_LOCAL_PUBLIC`` for public) for ``path``."""
    schema = guarded_schema(path)
    if schema is None:
        return (path_value(path),)
    return (path_value(path), sql.Identifier(schema).as_string(None))
