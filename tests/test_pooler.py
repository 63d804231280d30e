"""Behind a real PgBouncer (started by ``scripts/test``), under a real uvicorn.

PgBouncer has 4 server connections per database (``default_pool_size``) and the app's pool
more than that, so in transaction mode consecutive transactions of one client connection run
on different server sessions: any tenant state kept in the session (a ``SET search_path``)
answers another tenant's request. Every view of ``tests/pooler_app`` reports the tenant's
marker row as each of its queries saw it; the tests count every answer that is not 200 with
the request's own tenant on every query.

- transaction mode, ``POOLER = "transaction"``: thousands of requests over 24 tenants hitting
  views that await between queries, atomic blocks, rollbacks, savepoints, raw cursors and
  ``executemany``, plus the Channels consumer: 0 wrong answers;
- session mode, ``POOLER = "session"``: the same load, 0 wrong;
- a pooler that is not declared (``POOLER`` unset): never a 200 with another tenant's data,
  the refusal names ``POOLER``, and ``check --database default`` reports it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from django.conf import settings

from .conftest import ROOT, TENANT_IDS, Server

pytestmark = pytest.mark.e2e

TX_PORT = os.environ.get("OMNITENANT_PGBOUNCER_TX_PORT", "")
SESSION_PORT = os.environ.get("OMNITENANT_PGBOUNCER_SESSION_PORT", "")
NO_PGBOUNCER = (
    "PgBouncer is not running: scripts/test starts it (Debian package pgbouncer) and exports "
    "OMNITENANT_PGBOUNCER_TX_PORT / OMNITENANT_PGBOUNCER_SESSION_PORT"
)
needs_tx = pytest.mark.skipif(not TX_PORT, reason=NO_PGBOUNCER)
needs_session = pytest.mark.skipif(not SESSION_PORT, reason=NO_PGBOUNCER)

VIEWS = ["sleepy", "atomic", "rollback", "savepoint", "raw", "executemany", "mixed"]
PATHS = [f"/pooler/{name}/" for name in VIEWS] + ["/whoami/", "/whoami-sync/"]
N_REQUESTS = int(os.environ.get("OMNITENANT_POOLER_REQUESTS", "3000"))
CONCURRENCY = 64
APP = "tests.pooler_app.asgi:application"


def pooler_env(port: str, pooler: str, pool_max: int) -> dict[str, str]:
    """Environment of a server whose default alias goes through PgBouncer on ``port``."""
    db = settings.DATABASES["default"]
    direct = f"host={db['HOST']} port={db['PORT']} dbname={db['NAME']} user={db['USER']}"
    if db.get("PASSWORD"):
        direct += f" password={db['PASSWORD']}"
    return {
        "DJANGO_SETTINGS_MODULE": "tests.pooler_app.settings",
        "OMNITENANT_PG_PORT": port,
        "OMNITENANT_POOLER": pooler,
        # LISTEN cannot work through a transaction pooler: the listener goes to the server.
        "OMNITENANT_INVALIDATION_DSN": direct,
        "OMNITENANT_POOL_MIN": "2",
        "OMNITENANT_POOL_MAX": str(pool_max),
        "OMNITENANT_POOL_TIMEOUT": "10",
        "OMNITENANT_REGISTRY_TTL": "3600",
        "OMNITENANT_REDIS_URL": "",  # the in-memory channel layer: one process
    }


def check(tenant_id: str, path: str, status: int, body: Any) -> str | None:
    """None if the answer is right; else what is wrong with it."""
    if status != 200:
        return f"status {status}"
    if path.startswith("/whoami"):
        seen = [body["marker"], body["context"]]
        ok = True
    else:
        seen, ok = body["seen"], body["ok"]
    if body["tenant"] != tenant_id:
        return f"resolved {body['tenant']}"
    if not seen or any(marker != tenant_id for marker in seen):
        return f"saw {seen}"
    if not ok:
        return f"not ok: {body}"
    return None


Result = tuple[str, str, int, Any]


async def load(url: str, n: int, concurrency: int = CONCURRENCY) -> list[Result]:
    """``n`` requests, ``concurrency`` at a time, tenants and views interleaved at random."""
    rng = random.Random(8)
    jobs = [(TENANT_IDS[i % len(TENANT_IDS)], PATHS[i % len(PATHS)]) for i in range(n)]
    rng.shuffle(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(tenant_id: str, path: str) -> Result:
            async with sem:
                r = await client.get(path, headers={"host": f"{tenant_id}.localhost"})
            try:
                body: Any = r.json()
            except ValueError:
                body = r.text[:300]
            return tenant_id, path, r.status_code, body

        return list(await asyncio.gather(*(one(t, p) for t, p in jobs)))


def summarize(results: list[Result]) -> tuple[list[tuple[str, str, str]], Counter[int]]:
    problems = []
    for tenant_id, path, status, body in results:
        why = check(tenant_id, path, status, body)
        if why is not None:
            problems.append((tenant_id, path, why))
    return problems, Counter(status for _, _, status, _ in results)


def wrong_tenant(results: list[Result]) -> list[Result]:
    """200 answers carrying another tenant's marker: the one thing that must never happen."""
    out = []
    for result in results:
        tenant_id, path, status, body = result
        if status != 200 or not isinstance(body, dict):
            continue
        seen = [body.get("marker")] if path.startswith("/whoami") else body.get("seen", [])
        if any(marker is not None and marker != tenant_id for marker in seen):
            out.append(result)
    return out


def assert_all_right(results: list[Result], server: Server, n: int) -> None:
    problems, statuses = summarize(results)
    assert len(results) == n
    assert len({t for t, _, _, _ in results}) == len(TENANT_IDS)
    wrong = wrong_tenant(results)
    assert not problems, (
        f"{len(problems)} of {n} answers wrong ({len(wrong)} with another tenant's data), "
        f"statuses {dict(statuses)}; first: {problems[:5]}\n{server.output()[-3000:]}"
    )
    assert statuses == Counter({200: n})
    assert "Traceback" not in server.output()


@pytest.fixture(scope="module")
def tx_server(tenants: dict[str, Any]) -> Iterator[Server]:
    if not TX_PORT:
        pytest.skip(NO_PGBOUNCER)
    # 24 client connections to PgBouncer, which has 4 server connections.
    server = Server(APP, env=pooler_env(TX_PORT, "transaction", 24))
    yield server
    server.stop()


@needs_tx
@pytest.mark.asyncio
async def test_transaction_mode_thousands_of_requests_all_right(tx_server: Server) -> None:
    await load(tx_server.url, 100, 16)  # warm the registry and the pool
    results = await load(tx_server.url, N_REQUESTS)
    assert_all_right(results, tx_server, N_REQUESTS)


async def ws_client(port: int, tenant_id: str, pings: int, token: str) -> list[str]:
    """One feed socket: hello, ``pings`` checked pongs, one post seen back. Returns problems.

    The tenant's other socket posts too: its note may arrive at any point, and is checked.
    """
    problems = []
    mine = f"{token}-{tenant_id}-"
    async with websockets.connect(
        f"ws://{tenant_id}.localhost:{port}/ws/feed/", host="127.0.0.1", open_timeout=10
    ) as socket:

        async def recv(kind: str) -> dict[str, Any]:
            while True:
                message = dict(json.loads(await asyncio.wait_for(socket.recv(), 15)))
                if message.get("type") == "note":
                    text = str(message.get("text"))
                    if message.get("tenant") != tenant_id or not text.startswith(mine):
                        problems.append(f"{tenant_id}: foreign note {message}")
                if message.get("type") == kind or message.get("type") not in ("note", "pong"):
                    return message

        hello = await recv("hello")
        if hello.get("type") != "hello" or hello.get("tenant") != tenant_id:
            problems.append(f"{tenant_id}: hello {hello}")
        for _ in range(pings):
            await socket.send(json.dumps({"action": "ping"}))
            pong = await recv("pong")
            if pong != {"type": "pong", "tenant": tenant_id}:
                problems.append(f"{tenant_id}: {pong}")
            await asyncio.sleep(random.random() * 0.01)
        text = f"{mine}{random.random()}"
        await socket.send(json.dumps({"action": "post", "text": text}))
        while (note := await recv("note")).get("text") != text:
            if note.get("type") != "note":
                problems.append(f"{tenant_id}: {note}")
                break
    return problems


async def probe_client(port: int, tenant_id: str, probes: int) -> list[str]:
    """One ``/ws/probe/`` socket: every answer lists what each of 7 queries saw."""
    problems = []
    async with websockets.connect(
        f"ws://{tenant_id}.localhost:{port}/ws/probe/", host="127.0.0.1", open_timeout=10
    ) as socket:
        for _ in range(probes):
            await socket.send(json.dumps({"action": "probe"}))
            answer = json.loads(await asyncio.wait_for(socket.recv(), 15))
            seen = answer.get("seen") or [None]
            if answer.get("tenant") != tenant_id or any(m != tenant_id for m in seen):
                problems.append(f"{tenant_id}: {answer}")
            await asyncio.sleep(random.random() * 0.01)
    return problems


@needs_tx
@pytest.mark.asyncio
async def test_transaction_mode_channels_consumers_all_right(tx_server: Server) -> None:
    from tests.channels.conftest import delete_notes

    token, pings, probes = "pooler-ws", 6, 8
    start = len(tx_server.output())
    try:
        lists = await asyncio.gather(
            *(ws_client(tx_server.port, t, pings, token) for t in TENANT_IDS for _ in range(2)),
            *(probe_client(tx_server.port, t, probes) for t in TENANT_IDS),
        )
    finally:
        await asyncio.to_thread(delete_notes, token, TENANT_IDS)
    problems = [p for ps in lists for p in ps]
    checked = len(TENANT_IDS) * (2 * (pings + 1) + probes)
    assert problems == [], f"{len(problems)} of {checked} messages wrong: {problems[:5]}"
    assert checked >= 500
    assert "Traceback" not in tx_server.output()[start:]


@needs_session
@pytest.mark.asyncio
async def test_session_mode_same_load_all_right(tenants: dict[str, Any]) -> None:
    # Session mode pins a server connection per client connection: the app's pool must not
    # exceed PgBouncer's 4 server connections, or connections beyond them wait forever.
    server = Server(APP, env=pooler_env(SESSION_PORT, "session", 4))
    try:
        await load(server.url, 100, 16)
        n = N_REQUESTS // 2
        results = await load(server.url, n)
        assert_all_right(results, server, n)
    finally:
        server.stop()


REFUSAL = re.compile(r"POOLER")


@needs_tx
@pytest.mark.asyncio
async def test_undeclared_pooler_is_refused_never_served(tenants: dict[str, Any]) -> None:
    server = Server(APP, env=pooler_env(TX_PORT, "", 24))
    try:
        results = await load(server.url, 600)
    finally:
        server.stop()
    statuses = Counter(status for _, _, status, _ in results)
    wrong = wrong_tenant(results)
    assert wrong == [], f"{len(wrong)} of 600 answers with another tenant's data: {wrong[:3]}"
    assert statuses[200] == 0, f"served behind an undeclared pooler: {dict(statuses)}"
    assert set(statuses) <= {500, 503}, dict(statuses)
    assert REFUSAL.search(server.output()), server.output()[-3000:]


def manage_check(port: str, pooler: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **pooler_env(port, pooler, 4)}
    return subprocess.run(
        [sys.executable, "-m", "django", "check", "--database", "default"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@needs_tx
def test_check_reports_undeclared_pooler(tenants: dict[str, Any]) -> None:
    refused = manage_check(TX_PORT, "")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert re.search(r"omnitenant\.E03\d", out) and "POOLER" in out, out
    declared = manage_check(TX_PORT, "transaction")
    out = declared.stdout + declared.stderr
    assert declared.returncode == 0, out
    assert not re.search(r"omnitenant\.E03\d", out), out
