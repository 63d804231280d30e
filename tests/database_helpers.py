"""Helpers for the database-per-tenant tests: servers, throwaway databases, connection counts.

Tenant databases get names starting with ``<OMNITENANT_PGDATABASE>_`` so parallel test runs on
a shared server never touch each other's, and leftovers of a crashed run are dropped first.
The second server comes from OMNITENANT_PG2_HOST/OMNITENANT_PG2_PORT (``scripts/test``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow


@dataclass(frozen=True)
class PgServer:
    host: str
    port: str

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def database_config(self, name: str) -> dict[str, str]:
        return {"NAME": name, "HOST": self.host, "PORT": self.port}


def main_server() -> PgServer:
    return PgServer(os.environ["OMNITENANT_PG_HOST"], os.environ["OMNITENANT_PG_PORT"])


def second_server() -> PgServer:
    host, port = os.environ.get("OMNITENANT_PG2_HOST"), os.environ.get("OMNITENANT_PG2_PORT")
    if not (host and port):
        pytest.skip("OMNITENANT_PG2_HOST/PORT not set: scripts/test starts a second PostgreSQL")
    return PgServer(host, port)


def prefix() -> str:
    """Prefix of every tenant database (and role) these tests create."""
    return os.environ["OMNITENANT_PGDATABASE"] + "_tdb_"


def starting_with(literal: str) -> str:
    """A LIKE pattern matching names that start with ``literal`` (``_`` and ``%`` escaped)."""
    return literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def database_names(server: PgServer, literal_prefix: str) -> list[str]:
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
            [starting_with(literal_prefix)],
        ).fetchall()
    return [str(r[0]) for r in rows]


def database_exists(server: PgServer, name: str) -> bool:
    with server.connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


def drop_databases(server: PgServer, names: Iterable[str], threads: int = 8) -> None:
    def drop(name: str) -> None:
        with server.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(drop, names))


def drop_databases_like(server: PgServer, literal_prefix: str) -> None:
    """Drop every database whose name starts with ``literal_prefix``."""
    drop_databases(server, database_names(server, literal_prefix))


def clone_databases(server: PgServer, template: str, names: Iterable[str]) -> None:
    """``CREATE DATABASE ... TEMPLATE`` in parallel; FILE_COPY is the fast strategy here."""

    def clone(name: str) -> None:
        with server.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(clone, names))


def client_connections(server: PgServer, literal_prefix: str) -> dict[str, int]:
    """Server connections per database whose name starts with ``literal_prefix``."""
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT datname, count(*) FROM pg_stat_activity"
            " WHERE datname LIKE %s AND backend_type = 'client backend' GROUP BY 1",
            [starting_with(literal_prefix)],
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


@dataclass
class ConnectionSampler:
    """Samples, in a thread, the server connections to databases starting with ``prefix``."""

    server: PgServer
    prefix: str
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname LIKE %s AND backend_type = 'client backend'"
        )
        with self.server.connect() as conn:
            while not self._stop.is_set():
                row = conn.execute(query, [starting_with(self.prefix)]).fetchone()
                self.samples.append(int(row[0]) if row else 0)
                time.sleep(0.001)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)
