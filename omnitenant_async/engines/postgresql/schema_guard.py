"""A tenant whose schema was dropped fails closed instead of falling through to ``public``.

PostgreSQL silently skips a missing schema on the ``search_path``. With ``public`` after the
tenant's schema, a worker that still thinks a dropped tenant exists (its cache, or a pooled
connection whose path was set before the drop) would run the tenant's queries on ``public``'s
shared tables. So every statement that sets a tenant's path checks that its schema exists
(``paths.set_statement``), and the first statement after a checkout that does *not* set the
path - the pooled connection already had it - carries ``SELECT '<schema>'::regnamespace`` in
the same message. A missing schema is an error (``TenantSchemaMissing``, a 404), at the cost
of a few bytes and no round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from psycopg import errors, sql

from ...exceptions import TenantSchemaMissing
from .paths import STATEMENT_CACHE_SIZE, schema_literal


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def statement(schema_name: str) -> str:
    """``SELECT '"name"'::regnamespace``: fails when the schema does not exist."""
    return sql.SQL("SELECT {}::regnamespace").format(schema_literal(schema_name)).as_string(None)


def mark_checkout(connection: Any) -> None:
    """A connection just left the pool: the schema of its path is checked again."""
    connection._ot_fresh = True


def pending(connection: Any, schema_name: str | None, switching: bool) -> str | None:
    """The lone check to send before the next statement (``None``: nothing to check).

    A switch sends the checking ``SET`` anyway. Without one, a fresh checkout checks the
    schema its pooled path names, and a failed check stays for that schema (not for the
    tenant the code goes back to) until the checkout ends.
    """
    fresh = getattr(connection, "_ot_fresh", False)
    connection._ot_fresh = False
    verify: str | None = getattr(connection, "_ot_verify", None)
    if switching or schema_name is None or verify != schema_name:
        verify = None
    if fresh and not switching:
        verify = schema_name
    connection._ot_verify = verify
    return verify


def sent(connection: Any) -> None:
    connection._ot_verify = None


def translate(err: Exception, schema_name: str) -> Exception:
    """The check's own error becomes ``TenantSchemaMissing``; others stay as they are."""
    if isinstance(err, errors.InvalidSchemaName) and schema_name in str(err):
        return TenantSchemaMissing(schema_name)
    return err


def send_after(
    cursor: Any,
    send: Callable[..., Any],
    prefix: str,
    query: str,
    params: Any,
    checked: str | None,
) -> Any:
    """``send(cursor, prefix + query)``: ``prefix`` is a statement and ``"; "``, composed once.

    :func:`send_prefixed` for the statement every query carries behind a transaction pooler,
    without building the message from a list each time.
    """
    query, params = bound(cursor, query, params)
    return send_checked(cursor, send, escaped(prefix, params) + query, params, checked)


def send_checked(
    cursor: Any, send: Callable[..., Any], query: str, params: Any, checked: str | None
) -> Any:
    """``send(cursor, query, params)``, whose first of two statements checks ``checked``; then on to
    the second statement's result."""
    try:
        result = send(cursor, query, params)
    except Exception as err:
        _failed(cursor, err, checked)
        raise
    cursor.nextset()
    return result


def bound(cursor: Any, query: str, params: Any) -> tuple[str, Any]:
    """``(query, params)`` to send behind a prefix, parameters merged here when they can be.

    psycopg caches the parse of its 128 most recent query texts. Sent with its parameters,
    ``<prefix>; <query>`` is a text of its own per tenant, parsed anew once more than 128
    tenant x query pairs rotate (~5-8 µs a query). ``mogrify`` (client-side binding) parses
    ``query`` alone, which stays cached, and merges the parameters; the text then goes
    without parameters, so nothing parses it again.
    """
    mogrify = getattr(cursor, "mogrify", None)
    if params is None or mogrify is None:
        return query, params
    return mogrify(query, params), None


def escaped(statement: str, params: Any) -> str:
    """``statement`` as part of a query that has ``params``: each ``%`` doubled.

    With parameters psycopg reads every ``%`` of the query as a placeholder, so a schema name
    quoted in the prefix (``use_schema("a%s")``) would take the query's parameters.
    """
    if params is None or "%" not in statement:
        return statement
    return statement.replace("%", "%%")


def _failed(cursor: Any, err: Exception, checked: str | None) -> None:
    """Raise ``TenantSchemaMissing`` if ``err`` is the check of ``checked`` failing."""
    missing = translate(err, checked) if checked else err
    if missing is not err:
        cursor.connection._ot_verify = checked  # sticky: every later statement fails too
        raise missing from err


def send_prefixed(
    cursor: Any, prefix: list[str], query: str | None, params: Any, checked: str | None
) -> Any:
    """``<prefix>; <query>`` as one message, then on to the query's own result.

    ``checked`` is the schema whose existence the prefix checks: its error is translated.
    """
    send = getattr(cursor, "_send", cursor.execute)  # a server-binding cursor has no _send
    if query:
        query, params = bound(cursor, query, params)
    try:
        head = [escaped(statement, params) for statement in prefix]
        result = send("; ".join([*head, query] if query else head), params)
    except Exception as err:
        _failed(cursor, err, checked)
        raise
    if query:
        for _ in prefix:
            cursor.nextset()
    return result
