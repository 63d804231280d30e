"""Schema-per-tenant PostgreSQL engine: ``ENGINE = "omnitenant_async.backends.postgresql"``.

Django's PostgreSQL backend with its native pool, plus one thing: before a cursor is used, the
``search_path`` wanted by the current tenant is compared with the one recorded *on the psycopg
connection* (so the record travels with the physical connection through the pool). Only when
they differ is a ``SET search_path`` sent - by default in the same message as the next query,
so even a switch costs no extra round trip.

The record is dropped whenever PostgreSQL may have undone the ``SET``: after a rollback or a
savepoint rollback, and when a connection goes back to the pool in a transaction.

Two defaults differ from Django's: a connection is checked (without a round trip,
``engines.health``) before it is used, so a server restart costs no request; and a
forked child process never reuses the pools it inherited (see ``engines.forks``). And a
connection goes back to the pool when the thread that checked it out ends, even if Django
never sent ``request_finished`` (``engines.leases``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base as pg

from .. import forks, health, leases
from . import local_path, pooler, schema_guard, search_path
from .introspection import DatabaseIntrospection

_PostgresWrapper: Any = pg.DatabaseWrapper


def _forget_pools() -> list[Any]:
    pools = list(_PostgresWrapper._connection_pools.values())
    _PostgresWrapper._connection_pools.clear()
    return pools


forks.on_fork(_forget_pools)


class DatabaseWrapper(_PostgresWrapper):
    introspection_class = DatabaseIntrospection
    _ot_connecting = False  # set by connect() for its own get_connection_params() call
    _ot_checked_out: Any = None  # the pool of the connection held now (see ``pool``)

    @property
    def pool(self) -> Any:
        """Django's ``pool``, without looking it up again while a pooled connection is held.

        Django's property reads the options and the dict of pools twice on each of its ~7
        reads per request. While this wrapper holds a connection from the pool, the answer is
        that pool (Django puts the connection back to it whatever the dict says since); else
        it is the dict's pool once the alias has one and the options still ask for it.
        """
        pool = self._ot_checked_out
        if pool is None:
            pool = self._existing_pool()
            if pool is None:
                return _PostgresWrapper.pool.fget(self)
        return pool

    def _existing_pool(self) -> Any:
        """This alias's pool if it exists and the options still ask for one, else ``None``."""
        pool = self._connection_pools.get(self.alias)
        if pool is not None and self.settings_dict["OPTIONS"].get("pool"):
            return pool
        return None

    def connect(self) -> None:
        self._ot_connecting = True
        self._ot_checked_out = None  # looked up afresh for each checkout
        try:
            super().connect()
        finally:
            self._ot_connecting = False

    def get_connection_params(self) -> dict[str, Any]:
        """Django's, except for ``connect()``'s own call on a pooled alias: ``{}``.

        ``connect()`` builds the connect kwargs on every checkout (~150 bytecodes) and hands
        them to ``get_new_connection()``, which takes a pooled connection instead; the pool
        was made from a real set when it was created. Every other caller gets Django's.
        """
        if self._ot_connecting:
            self._ot_connecting = False  # only the first call, connect()'s, is skipped
            pool = self._existing_pool()
            if pool is not None:
                self._ot_checked_out = pool  # the pool get_new_connection() will take from
                return {}
        params: dict[str, Any] = super().get_connection_params()
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        # Django reads ``pool`` three more times while checking out: they get this one.
        pool = self._ot_checked_out = self.pool  # connect() found it already, if pooled
        try:
            return self._checkout(conn_params, pool)
        except BaseException:
            self._ot_checked_out = None
            raise

    def _checkout(self, conn_params: dict[str, Any], pool: Any) -> Any:
        connection = super().get_new_connection(conn_params)
        if pool is not None and not self.settings_dict["CONN_HEALTH_CHECKS"]:
            try:
                health.check_cheaply(connection)  # a syscall (see _replace_broken)
            except psycopg.OperationalError:
                connection = self._replace_broken(connection, conn_params, pool)
        try:
            pooler.verify(connection, self.alias)
        except BaseException:
            if pool is not None:
                pool.putconn(connection)
            else:
                connection.close()
            raise
        if connection.cursor_factory is pg.Cursor:  # a new connection (server-side binding: not)
            connection.cursor_factory = search_path.PiggybackCursor
        if pool is not None:
            leases.track(self)  # returned to the pool if this thread ends holding it
        schema_guard.mark_checkout(connection)
        return connection

    def _replace_broken(self, broken: Any, conn_params: dict[str, Any], pool: Any) -> Any:
        """The next checkout that a server restart did not break, for ``broken``.

        Django's pool has no check unless ``CONN_HEALTH_CHECKS`` (a round trip per checkout);
        the engine's costs a syscall (``engines.health``). A broken connection is closed and
        given back (the pool discards it) and the next one tried. ``pool`` is ``self.pool``.
        """
        connection = broken
        for attempt in range(1, pool.max_size + 1):  # the first was the caller's check
            connection.close()
            pool.putconn(connection)
            connection = _PostgresWrapper.get_new_connection(self, conn_params)
            if attempt == pool.max_size:
                break  # as many checks as the pool holds: this one goes unchecked
            try:
                health.check_cheaply(connection)
                return connection
            except psycopg.OperationalError:
                continue
        return connection

    def create_cursor(self, name: str | None = None) -> Any:
        """Django's cursor, once the connection is on the tenant's path.

        ``_cursor()`` calls this connected and inside ``wrap_database_errors``; a plain cursor
        sends the ``SET`` in the same message as its first query (``search_path.apply``).
        """
        search_path.apply(self.connection, piggyback=name is None)
        return super().create_cursor(name)

    def _commit(self) -> Any:
        try:
            return super()._commit()
        finally:
            local_path.forget(self.connection)  # a SET LOCAL ends with its transaction

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
        try:
            return super()._close()
        finally:
            self._ot_checked_out = None

    def close_pool(self) -> None:
        """Django's: close this alias's pool; the next ``pool`` read makes a new one."""
        self._ot_checked_out = None
        super().close_pool()
