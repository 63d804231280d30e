"""Tenant and domain changes reach every worker within a second (issue 8, section 2).

Real uvicorn processes (three of one worker each, so each answer names its process, and one of
two workers on one port), a management command in yet another process making the change, and
checked load: every answer is compared with the tenant's marker row. The registry TTL is an hour,
so only the invalidation through PostgreSQL can make a worker converge.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from omnitenant_async.invalidation import APPLICATION_NAME, CHANNEL
from tests.conftest import ROOT, Server

pytestmark = pytest.mark.e2e

#: Tenants of this module only (the shared t00..t23 stay untouched).
OWN_TENANTS = ["iv01", "iv02", "iv03", "iv04", "iv05", "iv06", "iv07", "iv08"]
CONVERGE_S = 1.0
SETTLE_S = 1.5  # load keeps running this long after the change
SERVER_ENV = {"OMNITENANT_REGISTRY_TTL": "3600", "OMNITENANT_REDIS_URL": ""}


def pg_params(dbname: str | None = None) -> dict[str, Any]:
    db = settings.DATABASES["default"]
    return {"host": db["HOST"], "port": db["PORT"], "user": db["USER"],
            "dbname": dbname or db["NAME"], "autocommit": True}  # fmt: skip


def sql(query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(**pg_params()) as conn:
        cursor = conn.execute(query, args or None)
        return cursor.fetchall() if cursor.description else []


def manage(code: str) -> tuple[float, float]:
    """Run ``code`` in ``manage.py shell`` (another process); return (before, after) times."""
    script = (
        "import time\nfrom demo.customers.models import Domain, Tenant\n"
        "from omnitenant_async.provisioning import get_tenant_backend\n"
        "print('T0', time.time(), flush=True)\n" + code + "\nprint('T1', time.time(), flush=True)"
    )
    return _times(
        subprocess.run(
            [sys.executable, "demo/manage.py", "shell", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout  # fmt: skip
    )


def command(*args: str) -> tuple[float, float]:
    """Run a management command in another process; return the times around the command
    itself (Django's start-up is not part of the convergence)."""
    return manage(f"from django.core.management import call_command\ncall_command(*{args!r})")


def _times(stdout: str) -> tuple[float, float]:
    marks = dict(line.split() for line in stdout.splitlines() if line.startswith(("T0", "T1")))
    return float(marks["T0"]), float(marks["T1"])


@dataclass
class Answer:
    sent: float
    received: float
    status: int
    tenant: str | None = None
    marker: str | None = None
    retry_after: str | None = None


Expect = Callable[[Answer], bool]


def serves(tenant_id: str) -> Expect:
    return lambda a: a.status == 200 and a.tenant == tenant_id and a.marker == tenant_id


def status(code: int) -> Expect:
    return lambda a: a.status == code


def never_wrong(a: Answer) -> bool:
    """True unless the answer is wrong whatever the time: a 500, or another tenant's data."""
    return a.status < 500 and not (a.status == 200 and a.tenant != a.marker)


@dataclass
class Load:
    """One thread per (server, host) sending ``GET /whoami/`` back to back, answers recorded."""

    servers: list[Server]
    host: str
    fresh_connections: bool = False
    answers: dict[int, list[Answer]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for i, server in enumerate(self.servers):
            self.answers[i] = []
            thread = threading.Thread(target=self._run, args=(server, self.answers[i]))
            thread.start()
            self._threads.append(thread)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, server: Server, out: list[Answer]) -> None:
        client = httpx.Client(base_url=server.url, timeout=10, headers={"Host": self.host})
        try:
            while not self._stop.is_set():
                if self.fresh_connections:  # let the kernel spread them over the workers
                    client.close()
                    client = httpx.Client(base_url=server.url, timeout=10,
                                          headers={"Host": self.host})  # fmt: skip
                sent = time.time()
                try:
                    response = client.get("/whoami/")
                except httpx.HTTPError:
                    out.append(Answer(sent, time.time(), 0))
                    continue
                answer = Answer(sent, time.time(), response.status_code,
                                retry_after=response.headers.get("retry-after"))  # fmt: skip
                if response.status_code == 200:
                    body = response.json()
                    answer.tenant, answer.marker = body["tenant"], body["marker"]
                out.append(answer)
                time.sleep(0.002)
        finally:
            client.close()


@dataclass
class Verdict:
    converged_ms: list[float]  # per server: last stale answer received, after the change began
    wrong: int  # answers wrong at any time, or stale when sent > CONVERGE_S after the commit
    checked: int
    samples: list[str]


def judge(load: Load, begin: float, commit: float, expect: Expect) -> Verdict:
    converged, wrong, checked, samples = [], 0, 0, []
    for answers in load.answers.values():
        late = [a for a in answers if a.sent > commit + CONVERGE_S]
        assert len(late) >= 5, f"too few answers after the change to judge: {len(late)}"
        stale = [a for a in answers if a.sent >= begin and not expect(a)]
        converged.append(max((a.received - begin for a in stale), default=0.0) * 1000)
        bad = [a for a in answers if not never_wrong(a)] + [a for a in late if not expect(a)]
        wrong += len(bad)
        checked += len(answers)
        samples += [repr(a) for a in bad[:3]]
    return Verdict(converged, wrong, checked, samples)


def run_change(
    servers: list[Server], host: str, change: Callable[[], tuple[float, float]], expect: Expect,
    *, fresh_connections: bool = False,
) -> Verdict:  # fmt: skip
    with Load(servers, host, fresh_connections=fresh_connections) as load:
        begin, commit = change()
        time.sleep(max(0.0, commit + CONVERGE_S + SETTLE_S - time.time()))
    verdict = judge(load, begin, commit, expect)
    print(f"{host}: converged in {[round(ms) for ms in verdict.converged_ms]} ms, "
          f"{verdict.wrong} wrong of {verdict.checked}")  # fmt: skip
    return verdict


def assert_converged(verdict: Verdict) -> None:
    assert verdict.wrong == 0, verdict.samples
    assert max(verdict.converged_ms) <= CONVERGE_S * 1000, verdict.converged_ms


def warm(servers: list[Server], host: str, tenant_id: str) -> None:
    """Every server has ``host`` cached (so a stale answer is possible) and answers right."""
    for server in servers:
        response = httpx.get(f"{server.url}/whoami/", headers={"Host": host}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["marker"] == tenant_id


def listeners() -> int:
    rows = sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
               " AND datname = current_database()", APPLICATION_NAME)  # fmt: skip
    return int(rows[0][0])


def wait_for_listeners(n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while listeners() < n:
        assert time.monotonic() < deadline, f"only {listeners()} of {n} listeners connected"
        time.sleep(0.05)


def assert_clean_logs(servers: list[Server]) -> None:
    for server in servers:
        assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture(scope="module")
def own_tenants(tenants: dict[str, Any]) -> dict[str, Any]:
    from django.db import connections

    from demo.seed import create_tenant

    try:
        return {t: create_tenant(t, domains=[f"{t}.localhost"]) for t in OWN_TENANTS}
    finally:
        connections.close_all()


@pytest.fixture(scope="module")
def workers(own_tenants: dict[str, Any]) -> Iterator[list[Server]]:
    """Three uvicorn processes of one worker each, on three ports, sharing the database."""
    before = listeners()
    servers = [Server("demo.asgi:application", env=SERVER_ENV) for _ in range(3)]
    try:
        for server in servers:  # the first request starts each process's listener
            httpx.get(f"{server.url}/whoami/", headers={"Host": "localhost"}, timeout=10)
        wait_for_listeners(before + 3)
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_domain_moved_by_another_process_is_served_by_every_worker_within_1s(
    workers: list[Server],
) -> None:
    warm(workers, "iv01.localhost", "iv01")
    verdict = run_change(
        workers, "iv01.localhost",
        lambda: manage("d = Domain.objects.get(domain='iv01.localhost')\n"
                       "d.tenant = Tenant.objects.get(tenant_id='iv02')\nd.save()"),
        serves("iv02"),
    )  # fmt: skip
    assert_converged(verdict)
    assert_clean_logs(workers)


def test_deleted_tenant_answers_404_on_every_worker_within_1s(workers: list[Server]) -> None:
    warm(workers, "iv03.localhost", "iv03")
    verdict = run_change(
        workers, "iv03.localhost",
        lambda: command("deletetenant", "--tenant-id=iv03"),
        status(404),
    )  # fmt: skip
    assert_converged(verdict)
    assert_clean_logs(workers)


def test_dropped_tenant_answers_404_never_500(workers: list[Server]) -> None:
    warm(workers, "iv04.localhost", "iv04")
    verdict = run_change(
        workers, "iv04.localhost",
        lambda: command("deletetenant", "--tenant-id=iv04", "--drop", "--noinput"),
        status(404),
    )  # fmt: skip
    assert_converged(verdict)
    assert_clean_logs(workers)


def test_change_made_in_sql_with_pg_notify_converges(workers: list[Server]) -> None:
    """Outside the ORM (no signal): the documented ``pg_notify`` in the same transaction."""
    warm(workers, "iv05.localhost", "iv05")

    def change() -> tuple[float, float]:
        begin = time.time()
        with psycopg.connect(**pg_params()) as conn, conn.transaction():
            conn.execute("UPDATE customers_domain SET tenant_id ="
                         " (SELECT id FROM customers_tenant WHERE tenant_id = 'iv02')"
                         " WHERE domain = 'iv05.localhost'")  # fmt: skip
            conn.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        return begin, time.time()

    assert_converged(run_change(workers, "iv05.localhost", change, serves("iv02")))


def test_killed_listeners_reconnect_clear_the_cache_and_keep_converging(
    workers: list[Server],
) -> None:
    """A change committed while the listeners are down is not heard: the reconnect clears."""
    warm(workers, "iv07.localhost", "iv07")
    count = listeners()

    def kill_then_change() -> tuple[float, float]:
        begin = time.time()
        with psycopg.connect(**pg_params()) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                [APPLICATION_NAME],
            ).fetchone()
            assert killed and killed[0] >= len(workers)
            with conn.transaction():  # at once: before any listener is back
                conn.execute("UPDATE customers_domain SET tenant_id ="
                             " (SELECT id FROM customers_tenant WHERE tenant_id = 'iv08')"
                             " WHERE domain = 'iv07.localhost'")  # fmt: skip
                conn.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        return begin, time.time()

    assert_converged(run_change(workers, "iv07.localhost", kill_then_change, serves("iv08")))
    wait_for_listeners(count)
    # ... and the reconnected listeners hear the next change.
    verdict = run_change(
        workers, "iv07.localhost",
        lambda: manage("d = Domain.objects.get(domain='iv07.localhost')\n"
                       "d.tenant = Tenant.objects.get(tenant_id='iv07')\nd.save()"),
        serves("iv07"),
    )  # fmt: skip
    assert_converged(verdict)


def test_two_workers_on_one_port_converge(own_tenants: dict[str, Any]) -> None:
    """uvicorn --workers 2: fresh connections reach both; none is stale after a second."""
    server = Server("demo.asgi:application", env=SERVER_ENV, workers=2)
    try:
        host = "iv06.localhost"
        for _ in range(20):  # both workers cache it (fresh connection each time)
            assert httpx.get(f"{server.url}/whoami/", headers={"Host": host}).status_code == 200
        time.sleep(0.5)  # both listeners connected
        verdict = run_change(
            [server, server], host,
            lambda: manage("d = Domain.objects.get(domain='iv06.localhost')\n"
                           "d.tenant = Tenant.objects.get(tenant_id='iv02')\nd.save()"),
            serves("iv02"), fresh_connections=True,
        )  # fmt: skip
        assert_converged(verdict)
        manage("d = Domain.objects.get(domain='iv06.localhost')\n"
               "d.tenant = Tenant.objects.get(tenant_id='iv06')\nd.save()")  # fmt: skip
    finally:
        server.stop()


def test_live_websockets_of_a_deleted_tenant_or_moved_domain_are_closed(
    workers: list[Server],
) -> None:
    from demo.seed import create_tenant

    create_tenant("iv09", domains=["iv09.localhost", "iv09-b.localhost"])

    async def scenario() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        sockets: dict[str, list[Any]] = {"iv09.localhost": [], "iv09-b.localhost": []}
        for host, opened in sockets.items():
            for server in workers:
                socket = await websockets.connect(
                    f"ws://{host}:{server.port}/ws/feed/", host="127.0.0.1", open_timeout=10
                )
                assert json.loads(await socket.recv())["tenant"] == "iv09"
                opened.append(socket)

        async def closed(socket: Any, since: float) -> tuple[int, float]:
            try:
                while True:
                    await asyncio.wait_for(socket.recv(), 5)
            except ConnectionClosed as err:
                return (err.rcvd.code if err.rcvd else 0, (time.time() - since) * 1000)
            except TimeoutError:
                return (-1, 5000.0)

        # The second host moves to another tenant, then the tenant itself is deleted.
        begin, _ = await asyncio.to_thread(
            manage, "d = Domain.objects.get(domain='iv09-b.localhost')\n"
            "d.tenant = Tenant.objects.get(tenant_id='iv02')\nd.save()",
        )  # fmt: skip
        moved = await asyncio.gather(*(closed(s, begin) for s in sockets["iv09-b.localhost"]))
        begin, _ = await asyncio.to_thread(command, "deletetenant", "--tenant-id=iv09")
        deleted = await asyncio.gather(*(closed(s, begin) for s in sockets["iv09.localhost"]))
        return moved, deleted

    moved, deleted = asyncio.run(scenario())
    print(f"WebSocket closes: moved {moved}, deleted {deleted} (code, ms)")
    assert [code for code, _ in moved] == [4409] * len(workers), moved
    assert [code for code, _ in deleted] == [4404] * len(workers), deleted
    assert max(ms for _, ms in moved + deleted) <= CONVERGE_S * 1000
    assert_clean_logs(workers)


def test_notification_is_sent_on_commit_and_never_for_a_rollback(
    own_tenants: dict[str, Any],
) -> None:
    from django.db import connections, transaction

    from demo.customers.models import Domain
    from omnitenant_async import use_master_db

    with psycopg.connect(**pg_params()) as listen:
        listen.execute(f"LISTEN {CHANNEL}")

        def heard(wait: float) -> list[str]:
            return [n.payload for n in listen.notifies(timeout=wait)]

        with use_master_db():
            domain = Domain.objects.get(domain="iv02.localhost")
            with pytest.raises(RuntimeError), transaction.atomic():
                domain.save()
                assert heard(0.3) == []  # not before the commit
                raise RuntimeError("roll back")
            assert heard(0.5) == []  # and never for a rollback
            with transaction.atomic():
                domain.save()
            assert [p.endswith(":customers.Domain") for p in heard(0.5)] == [True]
    connections.close_all()


def test_forked_child_gets_a_listener_of_its_own() -> None:
    """Fork safety: a child never believes it listens because its parent did."""
    code = (
        "import os, sys\nfrom omnitenant_async import invalidation\n"
        "invalidation._started = True\npid = os.fork()\n"
        "if pid == 0:\n    os._exit(0 if not invalidation._started else 1)\n"
        "_, status = os.waitpid(pid, 0)\nsys.exit(os.waitstatus_to_exitcode(status))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings"}
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env).returncode == 0
