"""PostgreSQL's side of the HTTP benchmark (``bench/bench_http.py``).

Statements per database since a reset (pg_stat_statements, which lists a piggybacked
``SET ...; SELECT ...`` as two statements), the backends a server holds, and the client
messages of a statement log (``log_statement = 'all'``, on the bench's own cluster only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

import psycopg

from bench.common import conninfo
from bench.harness import log


def sets_path(statement: str) -> bool:
    """A lower-cased statement that sets the search_path: ``SET search_path`` (django-tenants)
    or ``SELECT set_config('search_path', ...)`` (our engine; ``$1`` once pg_stat_statements
    has normalised it)."""
    return statement.startswith(
        ("set search_path", "select set_config('search_path'", "select set_config($1")
    )


class Monitor:
    """One connection to the ``postgres`` database reading pg_stat_statements for a database."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(conninfo(), autocommit=True)
        self.pgss = self._enable_pgss()

    def _enable_pgss(self) -> bool:
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        except psycopg.Error as err:
            log(f"pg_stat_statements unavailable ({err}); SET counts will be missing")
            return False
        return True

    def reset(self, db: str) -> None:
        if self.pgss:  # this database's entries only: the server may be shared
            self.conn.execute(
                "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                "WHERE datname = %s), 0)",
                [db],
            )

    def counts(self, db: str) -> dict[str, int]:
        """Statement calls in ``db`` since the last reset, by kind (none without the extension)."""
        if not self.pgss:
            return {}
        rows = self.conn.execute(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = %s",
            [db],
        ).fetchall()
        out = {"set_search_path": 0, "marker_select": 0, "domain_select": 0, "statements": 0}
        for query, calls in rows:
            q = query.lower().lstrip()
            out["statements"] += calls
            if sets_path(q):
                out["set_search_path"] += calls
            elif q.startswith("select") and "_marker" in q:
                out["marker_select"] += calls
            elif q.startswith("select") and "_domain" in q:
                out["domain_select"] += calls
        return out

    def backend_pids(self, db: str, app_name: str) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [db, app_name],
        ).fetchall()
        return [int(r[0]) for r in rows]

    @contextmanager
    def statement_log(self) -> Iterator[None]:
        """``log_statement = 'all'`` cluster-wide for a while (own throwaway cluster only)."""
        self.conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        self.conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        try:
            yield
        finally:
            self.conn.execute("ALTER SYSTEM RESET log_statement")
            self.conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)


class LogCounts(TypedDict):
    messages: int
    set_alone: int
    set_with_query: int
    select_marker: int
    domain: int


def classify_log(lines: list[str]) -> LogCounts:
    """Client messages in a PostgreSQL log with log_statement = 'all', by what they carry."""
    out = LogCounts(messages=0, set_alone=0, set_with_query=0, select_marker=0, domain=0)
    for line in lines:
        _, sep, stmt = line.partition("LOG:  statement: ")
        if not sep:
            _, sep, stmt = line.partition("LOG:  execute <unnamed>: ")
        if not sep:
            continue
        low = stmt.lower()
        if "_marker" not in low and "_domain" not in low and "search_path" not in low:
            continue  # the driver's own statements
        out["messages"] += 1
        if sets_path(low):
            # Piggybacked: another statement follows in the same message.
            rest = low.partition(";")[2].strip()
            out["set_with_query" if rest else "set_alone"] += 1
        if "_marker" in low:
            out["select_marker"] += 1
        if "_domain" in low:
            out["domain"] += 1
    return out
