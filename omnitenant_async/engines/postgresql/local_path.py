"""``SET LOCAL search_path`` in every transaction, for transaction-mode poolers.

Behind PgBouncer in transaction mode (and managed poolers that work the same way) consecutive
transactions of one client connection run on different server connections: a session ``SET``
lands on a server connection another client gets next, and a path "recorded" on the client
connection says nothing about the server connection the next transaction gets. So with
``OMNITENANT_CONFIG["POOLER"] = "transaction"`` nothing relies on session state:

- an autocommit statement is its own transaction: it always goes as
  ``SELECT set_config('search_path', ..., true); <statement>`` (``SET LOCAL``) in one message
  (an implicit transaction block, so the value applies to exactly that statement);
- in an explicit transaction the first statement carries the ``SET LOCAL`` and the path is
  remembered until the transaction ends (``_ot_tx_path``); a tenant switch or a rolled back
  savepoint sends it again.

No extra round trip either way, and every ``SET LOCAL`` checks that the tenant's schema still
exists (``paths.set_statement``). Statements that refuse a transaction block (VACUUM, CREATE
INDEX CONCURRENTLY, ...) cannot carry a ``SET LOCAL``: for a tenant they are refused with
:class:`TransactionPoolerUnsupported` (run them through a direct connection).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from psycopg import pq

from ...conf import get_config
from ...context import get_current_state
from ...exceptions import OmnitenantError
from . import schema_guard
from .paths import (
    PUBLIC_PATH,
    SET_LOCAL_CHECKED,
    SET_LOCAL_PUBLIC,
    STATEMENT_CACHE_SIZE,
    Path,
    guarded_schema,
    set_parameters,
    set_statement,
    wanted_path,
)

_INERROR = pq.TransactionStatus.INERROR
_INTRANS = pq.TransactionStatus.INTRANS

# What PostgreSQL refuses to run inside a transaction block (an implicit one included).
_REFUSES_TRANSACTION_BLOCK = re.compile(
    r"\s*(?:VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE|"
    r"DROP\s+TABLESPACE|REINDEX\s+(?:SYSTEM|DATABASE)|CREATE\s+SUBSCRIPTION|DROP\s+SUBSCRIPTION|"
    r"(?:CREATE|DROP|REINDEX)\b[^;]*\bCONCURRENTLY\b|COMMIT|ROLLBACK|BEGIN|START\s+TRANSACTION)",
    re.IGNORECASE,
)
# A statement that starts with one of these (no leading space or comment) cannot match
# _REFUSES_TRANSACTION_BLOCK, so the regex is skipped for what the ORM sends.
_PLAIN_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")


class _Prefix(NamedTuple):
    """What a statement carries for one path, composed once per path."""

    literal: str  # ``SELECT set_config(...); `` for a query without parameters
    checked: str | None  # the schema whose existence it checks (None: public)
    templates: tuple[str, str]  # the same with placeholders: positional, named
    parameters: tuple[str, ...]  # their values


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _prefix(path: Path) -> _Prefix:
    checked = guarded_schema(path)
    return _Prefix(
        f"{set_statement(path, local=True)}; ",
        checked,
        SET_LOCAL_PUBLIC if checked is None else SET_LOCAL_CHECKED,
        set_parameters(path),
    )


_NAMED_KEYS = ("omnitenant_path", "omnitenant_schema")


class TransactionPoolerUnsupported(OmnitenantError):
    """A statement that cannot carry a ``SET LOCAL`` was run for a tenant behind a pooler."""


def enabled() -> bool:
    return get_config().POOLER == "transaction"


def _wanted() -> Path:
    return wanted_path(get_current_state())


def forget(connection: Any) -> None:
    """The transaction ended or a savepoint rolled back: the next statement sets it again."""
    if connection is not None:
        connection._ot_tx_path = None


def execute(
    cursor: Any, send: Callable[..., Any], query: Any, params: Any, kwargs: dict[str, Any]
) -> Any:
    """Run ``query`` with the tenant's path through ``send(cursor, query, params, **kwargs)``,
    psycopg's own ``execute`` (a plain function: no bound method per statement)."""
    conn = cursor.connection
    status = conn.pgconn.transaction_status
    if kwargs:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}  # psycopg: prepare=None
    if status == _INERROR or query == "":
        return send(cursor, query, params, **kwargs)  # only ROLLBACK can run now / the pool's check
    path = wanted_path(get_current_state())
    if status == _INTRANS and getattr(conn, "_ot_tx_path", None) == path:
        return send(cursor, query, params, **kwargs)
    if (
        not isinstance(query, str)
        or kwargs
        or (not query.startswith(_PLAIN_DML) and _REFUSES_TRANSACTION_BLOCK.match(query))
    ):
        return _alone(cursor, send, path, query, params, kwargs)
    result = _send_prefixed(cursor, send, _prefix(path), query, params)
    if not conn.autocommit:  # an explicit transaction: the SET LOCAL lasts until its end
        conn._ot_tx_path = path
    return result


def _send_prefixed(
    cursor: Any, send: Callable[..., Any], prefix: _Prefix, query: str, params: Any
) -> Any:
    """``<SET LOCAL>; <query>`` in one message.

    With parameters the prefix's placeholders take the path, so the text is the same for
    every tenant and psycopg converts it once (no ``mogrify()`` first, no second conversion).
    """
    kind = type(params)
    if kind is tuple or kind is list:  # what the ORM passes
        query = prefix.templates[0] + query
        params = (*prefix.parameters, *params)
    elif kind is dict and _NAMED_KEYS[0] not in params:
        query = prefix.templates[1] + query
        params = {**params, **dict(zip(_NAMED_KEYS, prefix.parameters, strict=False))}
    else:  # no parameters, or a kind of their own: the literal prefix
        return schema_guard.send_after(cursor, send, prefix.literal, query, params, prefix.checked)
    return schema_guard.send_checked(cursor, send, query, params, prefix.checked)


def _alone(
    cursor: Any,
    send: Callable[..., Any],
    path: Path,
    query: Any,
    params: Any,
    kwargs: dict[str, Any],
) -> Any:
    """A query that cannot take the prefix: in a transaction, SET LOCAL first; else refuse."""
    conn = cursor.connection
    if not conn.autocommit:
        _set_in_transaction(cursor, path)
        return send(cursor, query, params, **kwargs)
    if path == PUBLIC_PATH:
        return send(cursor, query, params, **kwargs)  # the server's own default path
    raise TransactionPoolerUnsupported(
        f"{str(query)[:60]!r} cannot run inside a transaction, so it cannot carry the "
        f"tenant's SET LOCAL search_path behind a transaction pooler (POOLER = "
        "'transaction'). Run it through a direct connection to PostgreSQL (a second alias "
        "without the pooler), or name the schema explicitly."
    )


def in_own_transaction(cursor: Any, run: Callable[[], Any]) -> Any:
    """``executemany``/``copy``: in autocommit, one transaction that carries the SET LOCAL."""
    conn = cursor.connection
    if conn.pgconn.transaction_status == _INERROR:
        return run()
    path = _wanted()
    if not conn.autocommit:
        _set_in_transaction(cursor, path)
        return run()
    with conn.transaction():
        _set_local(cursor, path)
        return run()


def before_stream(cursor: Any, query: Any) -> None:
    """``stream`` returns a generator, so it cannot be wrapped: SET LOCAL first, or refuse."""
    conn = cursor.connection
    if conn.pgconn.transaction_status == _INERROR:
        return
    path = _wanted()
    if not conn.autocommit:
        _set_in_transaction(cursor, path)
        return
    _alone(cursor, lambda *a, **k: None, path, query, None, {})


def _set_in_transaction(cursor: Any, path: Path) -> None:
    conn = cursor.connection
    if getattr(conn, "_ot_tx_path", None) != path:
        _set_local(cursor, path)
        conn._ot_tx_path = path


def _set_local(cursor: Any, path: Path) -> None:
    """``SET LOCAL`` on its own (it checks the schema too)."""
    schema_guard.send_prefixed(
        cursor, [set_statement(path, local=True)], None, None, guarded_schema(path)
    )
