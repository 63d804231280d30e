"""The ``search_path`` a tenant state wants, and the statements that set it.

Shared by the session mode (``search_path``) and the transaction-pooler mode
(``local_path``), so both agree on what a tenant's path is.
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


@functools.lru_cache(maxsize=4096)
def set_statement(path: Path, *, local: bool = False) -> str:
    """``SET [LOCAL] search_path TO "a", "b"`` with every identifier quoted by psycopg."""
    names = sql.SQL(", ").join(map(sql.Identifier, path))
    verb = "SET LOCAL" if local else "SET"
    return sql.SQL(verb + " search_path TO {}").format(names).as_string(None)
