"""The conditional ``SET search_path``, tracked on the psycopg connection.

Attributes kept on the psycopg connection object (they survive the pool):

- ``_ot_search_path``: the path the server session has, as far as we know (``None``: unknown).
- ``_ot_pending``: a path still to be set in front of the next query (``None``: nothing).

The transaction status is read from ``pgconn`` (an int) rather than ``info`` (a new object
and an enum per read): this runs for every cursor.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from django.db.backends.postgresql import base as pg
from psycopg import pq

from ...conf import get_config
from ...context import get_current_state
from . import local_path, schema_guard
from .paths import PUBLIC_PATH, Path, guarded_schema, set_statement, wanted_path

_INERROR = pq.TransactionStatus.INERROR
_IDLE = pq.TransactionStatus.IDLE

__all__ = ["PUBLIC_PATH", "Path", "PiggybackCursor", "apply", "can_piggyback", "wanted_path"]


def apply(connection: Any, *, piggyback: bool) -> None:
    """Make sure the next statement on ``connection`` runs with the current tenant's path."""
    connection._ot_pending = None
    if local_path.enabled():
        return  # behind a transaction pooler every statement carries its own SET LOCAL
    path = wanted_path(get_current_state())
    switching = getattr(connection, "_ot_search_path", None) != path
    schema_guard.pending(connection, guarded_schema(path), switching)
    if connection.pgconn.transaction_status == _INERROR:
        return  # only ROLLBACK can run now; the rollback hook then forgets the path
    if switching:
        connection._ot_pending = path
    if not (
        piggyback
        and connection.cursor_factory is PiggybackCursor
        and get_config().PIGGYBACK_SEARCH_PATH
    ):
        flush(connection)


def forget(connection: Any) -> None:
    if connection is not None:
        connection._ot_search_path = None
        connection._ot_pending = None
        connection._ot_tx_path = None


def release(connection: Any) -> None:
    """Before a connection goes back to the pool: drop what a rollback there would undo."""
    if connection is None:
        return
    connection._ot_pending = None
    if connection.pgconn.transaction_status != _IDLE:
        connection._ot_search_path = None


def flush(connection: Any) -> None:
    """Send the pending verification and SET on their own (for calls that cannot carry them)."""
    pending = getattr(connection, "_ot_pending", None)
    verify = getattr(connection, "_ot_verify", None)
    if pending is None and verify is None:
        return
    prefix, checked = _prefix(connection, pending, verify)
    with connection.cursor() as cursor:
        schema_guard.send_prefixed(cursor, prefix, None, None, checked)
    if pending is not None:
        connection._ot_search_path = pending


def _prefix(
    connection: Any, pending: Path | None, verify: str | None
) -> tuple[list[str], str | None]:
    """The statements to send first, and the schema whose existence they check."""
    connection._ot_pending = None
    schema_guard.sent(connection)
    if pending is not None:  # the SET checks its own schema (paths.set_statement)
        return [set_statement(pending)], guarded_schema(pending)
    assert verify is not None
    return [schema_guard.statement(verify)], verify


# Statements that may share a message (an implicit transaction block) with the SET. Anything
# else - CREATE DATABASE, VACUUM, CREATE INDEX CONCURRENTLY, ALTER SYSTEM, a leading comment -
# gets the SET as a message of its own first: an allow-list cannot miss a statement that
# refuses to run in a transaction block, a deny-list could.
_PIGGYBACK_SAFE = re.compile(r"[\s(]*(?:SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b", re.IGNORECASE)


def can_piggyback(query: object) -> bool:
    """True if ``query`` is plain DML/SELECT, safe to send as ``SET ...; <query>``."""
    return isinstance(query, str) and _PIGGYBACK_SAFE.match(query) is not None


_DjangoCursor: Any = pg.Cursor


class PiggybackCursor(_DjangoCursor):
    """Django's client-side-binding cursor that sends a pending SET with the next query.

    ``SET ...; <query>`` goes as one message; ``nextset()`` then moves to the query's result.
    The path is recorded only after success: a failed message is one implicit transaction,
    so its SET is undone too. Only SELECT and DML ride along (``can_piggyback``): a message of
    several statements is an implicit transaction block, which e.g. VACUUM refuses.
    """

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if local_path.enabled():
            return local_path.execute(self, _DjangoCursor.execute, query, params, kwargs)
        conn = self.connection
        pending = getattr(conn, "_ot_pending", None)
        verify = getattr(conn, "_ot_verify", None)
        if pending is None and verify is None:
            return super().execute(query, params, **kwargs)
        if conn.pgconn.transaction_status == _INERROR:
            return super().execute(query, params, **kwargs)  # only ROLLBACK can run now
        kwargs = {k: v for k, v in kwargs.items() if v is not None}  # psycopg: prepare=None
        if kwargs or not can_piggyback(query):
            flush(conn)
            return super().execute(query, params, **kwargs)
        prefix, checked = _prefix(conn, pending, verify)
        result = schema_guard.send_prefixed(self, prefix, query, params, checked)
        if pending is not None:
            conn._ot_search_path = pending
        return result

    def _send(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """psycopg's own ``execute``, for a message this module composed."""
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        run = functools.partial(_DjangoCursor.executemany, self, query, params_seq, **kwargs)
        if local_path.enabled():
            return local_path.in_own_transaction(self, run)
        flush(self.connection)
        return run()

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        run = functools.partial(_DjangoCursor.copy, self, statement, *args, **kwargs)
        if local_path.enabled():
            return local_path.in_own_transaction(self, run)
        flush(self.connection)
        return run()

    def stream(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        if local_path.enabled():
            local_path.before_stream(self, query)
        else:
            flush(self.connection)
        return super().stream(query, *args, **kwargs)
