"""PostgreSQL restarted or stopped under load (issue 8, section 3): 503, never 500 or wrong.

The suite's own throwaway cluster (scripts/test, one per run) is restarted and stopped here;
each test starts it again whatever happens, and its port stays taken while it is down. Two
uvicorn processes with a short pool timeout, so a request waits at most a second for a
connection before answering 503 with ``Retry-After``.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server
from tests.test_invalidation import (
    SERVER_ENV,
    Answer,
    Load,
    assert_clean_logs,
    pg_params,
    wait_for_listeners,
    warm,
)

pytestmark = pytest.mark.e2e

OWN_TENANTS = ["ot01", "ot02", "ot03"]
OUTAGE_ENV = {**SERVER_ENV, "OMNITENANT_POOL_TIMEOUT": "1", "OMNITENANT_PG_CONNECT_TIMEOUT": "2"}


def pg_ctl(*args: str) -> None:
    """The suite cluster's own ``pg_ctl``, as the cluster's owner."""
    bindir = (
        os.environ.get("OMNITENANT_PG_BINDIR") or sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    )
    tmp = Path(os.environ["OMNITENANT_PG_DIR"])
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*as_owner, f"{bindir}/pg_ctl", "-D", str(tmp / "data"), "-l", str(tmp / "postgres.log"),
         "-w", "-t", "30", *args],
        cwd=tmp, timeout=60, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        log = (tmp / "postgres.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}\n{log}")


PORT = int(os.environ.get("OMNITENANT_PG_PORT", "0"))


class PortKeeper:
    """Holds the stopped cluster's port (listening, never answering), so that another test run
    on this machine (scripts/lib.sh picks the first port nobody listens on) cannot take it."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None

    def hold(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", PORT))
        sock.listen(64)
        self.sock = sock

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


keeper = PortKeeper()


def stop_postgres() -> None:
    pg_ctl("stop", "-m", "fast")
    keeper.hold()


def start_postgres() -> None:
    keeper.release()
    pg_ctl("start", "-o", f"-p {PORT}")


def ensure_postgres_up() -> None:
    """Leave *our* cluster up for the tests that follow, with no dead connection in this process.

    The restart killed the sessions this process holds: in this thread and in asgiref's
    thread for async tests (``connections`` is per thread), and those idle in the pool.
    """
    from asgiref.sync import SyncToAsync
    from django.db import connections

    try:
        conn = psycopg.connect(**pg_params(), connect_timeout=2)
    except psycopg.OperationalError:
        start_postgres()
        conn = psycopg.connect(**pg_params(), connect_timeout=2)
    with conn:
        row = conn.execute("SHOW data_directory").fetchone()
    ours = str(Path(os.environ["OMNITENANT_PG_DIR"]) / "data")
    if row is None or Path(row[0]).resolve() != Path(ours).resolve():
        pytest.exit(f"127.0.0.1:{PORT} is not this run's PostgreSQL ({row}): stopping", 3)
    connections.close_all()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
    for alias in connections:
        close_pool = getattr(connections[alias], "close_pool", None)
        if close_pool is not None:
            close_pool()  # a fresh pool on next use: no dead idle connection is handed out


@pytest.fixture(scope="module")
def outage_workers(tenants: dict[str, Any]) -> Iterator[list[Server]]:
    from django.db import connections

    from demo.seed import create_tenant

    for tenant_id in OWN_TENANTS:
        create_tenant(tenant_id, domains=[f"{tenant_id}.localhost"])
    connections.close_all()
    servers = [Server("demo.asgi:application", env=OUTAGE_ENV) for _ in range(2)]
    try:
        for server in servers:
            httpx.get(f"{server.url}/whoami/", headers={"Host": "localhost"}, timeout=10)
        wait_for_listeners(2)
        yield servers
    finally:
        for server in servers:
            server.stop()
        ensure_postgres_up()


def right(tenant_id: str, answer: Answer) -> bool:
    return answer.status == 200 and answer.tenant == tenant_id and answer.marker == tenant_id


def unavailable(answer: Answer) -> bool:
    return answer.status == 503 and answer.retry_after == "5"


def summary(name: str, load: Load) -> list[Answer]:
    answers = [a for per_server in load.answers.values() for a in per_server]
    counts: dict[int, int] = {}
    for a in answers:
        counts[a.status] = counts.get(a.status, 0) + 1
    print(f"{name} ({load.host}): {counts}")
    return answers


def recovered_after(answers: list[Answer], tenant_id: str, since: float) -> float:
    """Seconds from ``since`` to the last answer that was not right (0 if none)."""
    bad = [a.received - since for a in answers if a.sent >= since and not right(tenant_id, a)]
    return max(bad, default=0.0)


def test_restart_mid_run_answers_503_never_500_or_another_tenant(
    outage_workers: list[Server],
) -> None:
    warm(outage_workers, "ot01.localhost", "ot01")
    try:
        with Load(outage_workers, "ot01.localhost") as load:
            begin = time.time()
            pg_ctl("restart", "-m", "fast")
            up = time.time()
            time.sleep(3)
    finally:
        ensure_postgres_up()
    answers = summary("restart", load)
    assert all(right("ot01", a) or unavailable(a) for a in answers), [
        a for a in answers if not (right("ot01", a) or unavailable(a))
    ][:5]
    late = [a for a in answers if a.sent > up + 2]
    assert late and all(right("ot01", a) for a in late)
    print(f"restart took {up - begin:.2f} s; right again {recovered_after(answers, 'ot01', up):.2f}"
          " s after it")  # fmt: skip
    assert_clean_logs(outage_workers)


def test_five_second_stop_answers_503_with_retry_after_then_no_404_storm(
    outage_workers: list[Server],
) -> None:
    """A cached tenant (ot02) and one never seen before the outage (ot03, resolved during it)."""
    warm(outage_workers, "ot02.localhost", "ot02")
    try:
        with Load(outage_workers, "ot02.localhost") as cached, \
                Load(outage_workers, "ot03.localhost") as cold:  # fmt: skip
            stop_postgres()
            stopped = time.time()
            time.sleep(5)
            restarting = time.time()
            start_postgres()
            started = time.time()
            time.sleep(4)
    finally:
        ensure_postgres_up()
    for tenant_id, load in (("ot02", cached), ("ot03", cold)):
        answers = summary("5 s stop", load)
        assert all(right(tenant_id, a) or unavailable(a) for a in answers), [
            a for a in answers if not (right(tenant_id, a) or unavailable(a))
        ][:5]
        during = [a for a in answers if stopped + 0.5 < a.sent and a.received < restarting]
        assert during and all(unavailable(a) for a in during), during[:5]
        late = [a for a in answers if a.sent > started + 3]
        assert late and all(right(tenant_id, a) for a in late), late[:5]
        print(f"{tenant_id}: right again {recovered_after(answers, tenant_id, started):.2f} s "
              "after the start")  # fmt: skip
    assert_clean_logs(outage_workers)
