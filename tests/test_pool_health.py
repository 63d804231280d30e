"""Pooled connections broken by a server restart cost no request.

Without a check on checkout, every connection idle in the pool when the server restarted failed
the next request that got it (15 answers of 500 after a 0.2 s restart). The engine turns
Django's pool check on by default.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, connection

from omnitenant_async import tenant_context
from omnitenant_async.engines.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.usefixtures("tenants")

POOL = 4


def pooled_wrapper(alias: str, **overrides: Any) -> DatabaseWrapper:
    """A wrapper on a pool of its own; more wrappers of ``alias`` share it (one per thread)."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.update(overrides)
    settings_dict["CONN_HEALTH_CHECKS"] = False  # Django's default: the engine must fix it
    settings_dict["OPTIONS"]["pool"] = {"min_size": POOL, "max_size": POOL, "timeout": 10}
    return DatabaseWrapper(settings_dict, alias=alias)


def sibling(wrapper: DatabaseWrapper) -> DatabaseWrapper:
    return DatabaseWrapper(wrapper.settings_dict, alias=wrapper.alias)


def fill_pool(wrapper: DatabaseWrapper) -> set[int]:
    """Check out all POOL connections at once (one thread each), then return them."""
    pids: set[int] = set()
    barrier = threading.Barrier(POOL)

    def use() -> None:
        thread_wrapper = sibling(wrapper)  # one wrapper per thread, as Django has
        with thread_wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
            barrier.wait(timeout=10)
        thread_wrapper.close()

    threads = [threading.Thread(target=use) for _ in range(POOL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return pids


def query_many(wrapper: DatabaseWrapper, n: int) -> list[str]:
    errors = []
    for _ in range(n):
        try:
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as err:
            errors.append(str(err))
        finally:
            wrapper.close()
    return errors


@pytest.fixture
def main_pool() -> Iterator[DatabaseWrapper]:
    wrapper = pooled_wrapper("health_main")
    yield wrapper
    wrapper.close()
    wrapper.close_pool()


def test_connections_killed_while_idle_in_the_pool_fail_no_query(
    main_pool: DatabaseWrapper, tenants: dict[str, Any]
) -> None:
    pids = fill_pool(main_pool)
    assert len(pids) == POOL
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    with tenant_context(tenants["t01"]):
        assert query_many(main_pool, 3 * POOL) == []


def pg_ctl(*args: str) -> None:
    base = os.environ["OMNITENANT_PG2_DIR"]
    bindir = os.environ.get("OMNITENANT_PG_BINDIR", "/usr/lib/postgresql/15/bin")
    cmd = [f"{bindir}/pg_ctl", "-D", f"{base}/data", "-l", f"{base}/postgres.log", "-w", *args]
    if os.geteuid() == 0 and shutil.which("runuser"):
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    # No pipes: the restarted postmaster would inherit them and run() would wait for it.
    subprocess.run(
        cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=base, timeout=60,
    )  # fmt: skip


@pytest.mark.skipif(
    not os.environ.get("OMNITENANT_PG2_DIR")  # set by scripts/test
    or not Path(os.environ.get("OMNITENANT_PG2_DIR", "/nonexistent"), "data").exists(),
    reason="needs the second throwaway cluster of scripts/test",
)
def test_server_restart_fails_no_request_after_it(tenants: dict[str, Any]) -> None:
    """The pool holds four idle connections when the server restarts (fast mode); four
    threads then query at once: each checkout must find (or make) a live connection."""
    wrapper = pooled_wrapper(
        "health_pg2",
        HOST=os.environ["OMNITENANT_PG2_HOST"],
        PORT=os.environ["OMNITENANT_PG2_PORT"],
        NAME="postgres",
    )
    try:
        assert len(fill_pool(wrapper)) == POOL
        pg_ctl("restart", "-m", "fast")
        results: list[list[str]] = []

        def load() -> None:
            results.append(query_many(sibling(wrapper), 25))

        threads = [threading.Thread(target=load) for _ in range(POOL)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == POOL
        assert [error for errors in results for error in errors] == []
    finally:
        wrapper.close()
        wrapper.close_pool()
