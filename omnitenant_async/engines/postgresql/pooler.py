"""Detect a connection pooler between the engine and PostgreSQL, and fail closed.

Behind PgBouncer (and poolers that work like it) the backend key the client receives at
connect time is the pooler's own, so it differs from ``pg_backend_pid()`` of the server
session. Under an undeclared transaction pooler the session ``SET search_path`` the engine
relies on lands on whatever server connection runs the statement: answers from another tenant.
So unless ``OMNITENANT_CONFIG["POOLER"]`` says which kind it is, a detected pooler is refused.
The check costs one query per new physical connection, none per request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ...conf import get_config

POOLER_MODES = (None, "session", "transaction")


def behind_pooler(connection: Any) -> bool:
    """True if the server session's pid is not the backend key this connection received.

    Sent with libpq directly: no cursor, so no BEGIN on a connection that is not in
    autocommit yet (Django's own first statements may refuse a transaction block).
    """
    result = connection.pgconn.exec_(b"SELECT pg_backend_pid()")
    value = result.get_value(0, 0) if result.ntuples == 1 else None
    return value is not None and int(bytes(value)) != connection.info.backend_pid


def refusal(alias: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"DATABASES[{alias!r}] reaches PostgreSQL through a connection pooler (the server "
        "session's pid differs from the backend key the client received), but "
        "OMNITENANT_CONFIG['POOLER'] is not set. Set it to 'transaction' for PgBouncer's "
        "transaction (or statement-less) mode, or 'session' for session mode; tenant "
        "isolation depends on it (docs/deployment.md)."
    )


def verify(connection: Any, alias: str) -> None:
    """Once per physical connection: refuse an undeclared pooler."""
    if getattr(connection, "_ot_pooler_checked", False):
        return
    if get_config().POOLER is None and behind_pooler(connection):
        raise refusal(alias)
    connection._ot_pooler_checked = True
