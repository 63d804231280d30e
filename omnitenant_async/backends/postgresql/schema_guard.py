"""A tenant whose schema was dropped fails closed instead of falling through to ``public``.

PostgreSQL silently skips a missing schema on the ``search_path``. With ``public`` after the
tenant's schema, a worker that still thinks a dropped tenant exists (its cache, or a pooled
connection whose path was set before the drop) would run the tenant's queries on ``public``'s
shared tables. So the first statement after each checkout, and after each tenant switch,
carries ``SELECT '<schema>'::regnamespace`` in the same message: a missing schema is an error
(``TenantSchemaMissing``, a 404), at the cost of a few bytes and no round trip.
"""

from __future__ import annotations

import functools
from typing import Any

from psycopg import errors, sql

from ...exceptions import TenantSchemaMissing


@functools.lru_cache(maxsize=4096)
def statement(schema_name: str) -> str:
    """``SELECT '"name"'::regnamespace``: the cast parses an identifier, so quote it first."""
    identifier = sql.Identifier(schema_name).as_string(None)
    return sql.SQL("SELECT {}::regnamespace").format(sql.Literal(identifier)).as_string(None)


def mark_checkout(connection: Any) -> None:
    """A connection just left the pool: verify the schema of its first statement."""
    connection._ot_fresh = True


def pending(connection: Any, schema_name: str | None, switching: bool) -> str | None:
    """The verification to send now for ``schema_name`` (``None``: public, nothing to check)."""
    fresh = getattr(connection, "_ot_fresh", False)
    connection._ot_fresh = False
    if schema_name is None:
        connection._ot_verify = None
    elif fresh or switching:
        connection._ot_verify = schema_name
    verify: str | None = getattr(connection, "_ot_verify", None)
    return verify


def sent(connection: Any) -> None:
    connection._ot_verify = None


def translate(err: Exception, schema_name: str) -> Exception:
    """The verification's own error becomes ``TenantSchemaMissing``; others stay as they are."""
    if isinstance(err, errors.InvalidSchemaName) and schema_name in str(err):
        return TenantSchemaMissing(schema_name)
    return err


def send_prefixed(
    cursor: Any, prefix: list[str], query: str | None, params: Any, verify: str | None
) -> Any:
    """``<prefix>; <query>`` as one message, then on to the query's own result."""
    send = getattr(cursor, "_send", cursor.execute)  # a server-binding cursor has no _send
    try:
        result = send("; ".join([*prefix, query] if query else prefix), params)
    except Exception as err:
        missing = translate(err, verify) if verify else err
        if missing is err:
            raise
        cursor.connection._ot_verify = verify  # sticky: every later statement fails too
        raise missing from err
    if query:
        for _ in prefix:
            cursor.nextset()
    return result
