"""Schema-per-tenant PostgreSQL engine: ``ENGINE = "omnitenant_async.backends.postgresql"``.

Django's PostgreSQL backend with its native pool, plus one thing: before a cursor is used, the
``search_path`` wanted by the current tenant is compared with the one recorded *on the psycopg
connection* (so the record travels with the physical connection through the pool). Only when
they differ is a ``SET search_path`` sent - by default in the same message as the next query,
so even a switch costs no extra round trip.

The record is dropped whenever PostgreSQL may have undone the ``SET``: after a rollback or a
savepoint rollback, and when a connection goes back to the pool in a transaction.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base as pg

from . import search_path

_PostgresWrapper: Any = pg.DatabaseWrapper


class DatabaseWrapper(_PostgresWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        if params.get("cursor_factory") is pg.Cursor:
            params["cursor_factory"] = search_path.PiggybackCursor
        return params

    def _cursor(self, name: str | None = None) -> Any:
        # BaseDatabaseWrapper._cursor, with the search_path applied once connected.
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            search_path.apply(self.connection, piggyback=name is None)
            return self._prepare_cursor(self.create_cursor(name))

    def _rollback(self) -> Any:
        try:
            return super()._rollback()
        finally:
            search_path.forget(self.connection)

    def _savepoint_rollback(self, sid: str) -> None:
        # Forget only *after* the rollback: the statement itself goes through _cursor(), which
        # may SET (and record) the path just before ROLLBACK TO SAVEPOINT undoes it.
        try:
            super()._savepoint_rollback(sid)
        finally:
            search_path.forget(self.connection)

    def _close(self) -> Any:
        search_path.release(self.connection)
        return super()._close()
