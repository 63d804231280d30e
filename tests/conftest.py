"""Test set-up: the demo project against the real PostgreSQL started by ``scripts/test``.

The database named by OMNITENANT_PGDATABASE (default ``omnitenant_test``) is dropped and
re-created once per session, migrated, and seeded with schema tenants ``t00``..``t23`` on
``<id>.localhost``, each holding a marker row with its own id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
N_TENANTS = 24
TENANT_IDS = [f"t{i:02d}" for i in range(N_TENANTS)]
# This run's own directory for server logs (under $TMPDIR), removed when the run ends: logs
# of earlier runs must not pile up in /tmp.
RUN_DIR = Path(tempfile.mkdtemp(prefix="omnitenant-run-"))


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("OMNITENANT_PG_PORT"):
        pytest.exit(
            "OMNITENANT_PG_PORT is not set: run the tests with `scripts/test`, which starts a "
            "throwaway PostgreSQL and exports it.",
            returncode=2,
        )
    os.environ.setdefault("OMNITENANT_PGDATABASE", "omnitenant_test")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    import django

    django.setup()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db() -> None:
    """A fresh, migrated test database (public schema only)."""
    from demo.seed import ensure_database, migrate_public

    ensure_database(recreate=True)
    migrate_public()


@pytest.fixture(scope="session")
def tenants(django_db: None) -> dict[str, Any]:
    """``{tenant_id: Tenant}`` for t00..t23, created in parallel threads."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from demo.seed import create_tenant

    def create(tenant_id: str) -> Any:
        try:
            return create_tenant(tenant_id, domains=[f"{tenant_id}.localhost"])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(create, TENANT_IDS))
    return {t.tenant_id: t for t in created}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real uvicorn process serving an ASGI app of the demo project."""

    def __init__(
        self,
        app: str,
        env: dict[str, str] | None = None,
        workers: int = 1,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = RUN_DIR / f"omnitenant-uvicorn-{self.port}.log"
        cmd = [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
            "--port", str(self.port), "--log-level", "warning", "--workers", str(workers),
            # Idle keep-alive sockets closed by the server race with a client reusing them.
            "--timeout-keep-alive", "120", *args,
        ]  # fmt: skip
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"uvicorn did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="session")
def live_server(tenants: dict[str, Any]) -> Iterator[Server]:
    # A long registry TTL so "no lookup query when warm" holds for the whole run.
    server = Server("demo.asgi:application", env={"OMNITENANT_REGISTRY_TTL": "3600"})
    yield server
    server.stop()
