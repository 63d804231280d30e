"""omnitenant_async.asgi: requests on reused threads, and nothing left behind on them.

Most tests force ONE request thread, so every request reuses the thread of the one before.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core import checks as django_checks
from django.test import override_settings

from omnitenant_async import checks
from omnitenant_async.asgi import RequestThreads, TenantASGIHandler, get_asgi_application

from .asgi_client import communicator
from .conftest import TENANT_IDS, Server
from .engine_wrapper import engine_wrapper
from .test_connection_release import (
    HOSTILE,
    POOL_MAX,
    assert_every_answer_right,
    checked_load,
    connect_request,
    get_request,
    in_use,
    raw_request,
)

pytestmark = pytest.mark.usefixtures("tenants")

URLS = "tests.asgi_entry_app.urls"
SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
    "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1234),
    "server": ("127.0.0.1", 80),
}  # fmt: skip


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def scope_for(path: str, tenant_id: str, method: str = "GET") -> dict[str, Any]:
    host = f"{tenant_id}.localhost".encode()
    return {**SCOPE, "method": method, "path": path, "raw_path": path.encode(),
            "headers": [(b"host", host)]}  # fmt: skip


async def call(handler: Any, path: str, tenant_id: str = "t01") -> Answer:
    comm = communicator(handler, scope_for(path, tenant_id))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(timeout=30)
    chunks = []
    while True:
        message = await comm.receive_output(timeout=30)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(timeout=30)
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], headers, b"".join(chunks))


#: One thread for every in-process test: it serves test after test, as in a server.
ONE_THREAD = RequestThreads(1, name="omnitenant-test")


@pytest.fixture
def one_thread() -> Iterator[TenantASGIHandler]:
    """Our handler with a single request thread, on the test views."""
    with override_settings(ROOT_URLCONF=URLS):
        yield TenantASGIHandler(ONE_THREAD)


def assert_clean(state: dict[str, Any], tenant_id: str) -> None:
    assert state["marker"] == tenant_id
    assert state["leaked"] == 0
    assert state["in_atomic_block"] is False
    assert state["needs_rollback"] is False
    assert state["queries"] == 0
    assert state["language"] == "en-us"
    assert state["script_prefix"] == "/"


def pool_in_use() -> int:
    return in_use(engine_wrapper().pool)


# One thread, reused: a request's leftovers must not reach the next request.


@pytest.mark.asyncio
async def test_requests_reuse_the_one_thread(one_thread: TenantASGIHandler) -> None:
    names = set()
    for tenant_id in TENANT_IDS[:6]:
        answer = await call(one_thread, "/state/", tenant_id)
        assert answer.status == 200
        assert_clean(answer.json(), tenant_id)
        names.add(answer.json()["thread"])
    assert len(names) == 1
    assert one_thread.threads.started == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "status"),
    [("/leave-atomic/", 200), ("/raise-in-atomic/", 500), ("/broken-atomic/", 200)],
)
async def test_an_atomic_block_left_open_does_not_reach_the_next_request(
    one_thread: TenantASGIHandler, path: str, status: int
) -> None:
    before = pool_in_use()
    first = await call(one_thread, path, "t02")
    assert first.status == status
    for tenant_id in ("t03", "t02", "t04"):
        answer = await call(one_thread, "/state/", tenant_id)
        assert answer.status == 200, answer.body[:300]
        assert_clean(answer.json(), tenant_id)
    assert pool_in_use() == before


@pytest.mark.asyncio
async def test_translation_and_script_prefix_do_not_reach_the_next_request(
    one_thread: TenantASGIHandler,
) -> None:
    assert (await call(one_thread, "/set-language/", "t05")).json() == {"language": "fr"}
    assert_clean((await call(one_thread, "/state/", "t06")).json(), "t06")
    assert_clean((await call(one_thread, "/astate/", "t07")).json(), "t07")


@pytest.mark.asyncio
async def test_query_logging_does_not_reach_the_next_request(
    one_thread: TenantASGIHandler,
) -> None:
    assert (await call(one_thread, "/debug-queries/", "t05")).json()["queries"] >= 1
    assert_clean((await call(one_thread, "/state/", "t06")).json(), "t06")


@pytest.mark.asyncio
async def test_a_client_disconnecting_mid_request_leaves_nothing_behind(
    one_thread: TenantASGIHandler,
) -> None:
    before = pool_in_use()
    comm = communicator(one_thread, scope_for("/disconnect-in-atomic/", "t08"))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    await asyncio.sleep(0.5)  # the view holds a connection in an open atomic block
    assert pool_in_use() == before + 1
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(timeout=10)
    assert_clean((await call(one_thread, "/state/", "t09")).json(), "t09")
    assert pool_in_use() == before


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/astream/", "/sync-stream/"])
async def test_streaming_responses(one_thread: TenantASGIHandler, path: str) -> None:
    before = pool_in_use()
    answer = await call(one_thread, path, "t10")
    assert answer.status == 200
    lines = answer.body.decode().splitlines()
    assert len(lines) == 200 * 200
    assert {line.split()[0] for line in lines} == {"t10"}
    assert_clean((await call(one_thread, "/state/", "t11")).json(), "t11")
    assert pool_in_use() == before


@pytest.mark.asyncio
async def test_file_response(one_thread: TenantASGIHandler) -> None:
    answer = await call(one_thread, "/file/", "t12")
    assert answer.status == 200
    assert answer.headers["x-marker"] == "t12"
    assert (
        answer.body == Path(__file__).with_name("asgi_entry_app").joinpath("urls.py").read_bytes()
    )
    assert_clean((await call(one_thread, "/state/", "t13")).json(), "t13")


@pytest.mark.asyncio
async def test_concurrent_requests_on_one_thread_wait_their_turn(
    one_thread: TenantASGIHandler,
) -> None:
    """More requests than threads queue for the thread: every answer is its tenant's."""
    paths = ["/state/", "/astate/", "/whoami/", "/whoami-sync/"]

    async def one(i: int) -> tuple[str, str]:
        tenant_id = TENANT_IDS[i % len(TENANT_IDS)]
        answer = await call(one_thread, paths[i % len(paths)], tenant_id)
        assert answer.status == 200, answer.body[:300]
        return tenant_id, answer.json()["marker"]

    results = await asyncio.gather(*(one(i) for i in range(240)))
    assert all(tenant_id == marker for tenant_id, marker in results)
    assert one_thread.threads.started == 1
    assert one_thread.threads.waiting == 0


@pytest.mark.asyncio
async def test_a_request_cancelled_while_waiting_for_a_thread_gives_nothing_up() -> None:
    threads = RequestThreads(1, name="omnitenant-cancel")
    held = await threads.acquire()
    waiter = asyncio.ensure_future(threads.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    threads.release(held)
    assert await asyncio.wait_for(threads.acquire(), 1) is held


def test_get_asgi_application_is_our_handler() -> None:
    app = get_asgi_application()
    assert isinstance(app, TenantASGIHandler)
    with pytest.raises(ValueError, match="websocket"):
        asyncio.run(app({"type": "websocket"}, None, None))


def test_w040_when_there_are_more_threads_than_pooled_connections() -> None:
    from django.conf import settings as dj

    config = dict(dj.OMNITENANT_CONFIG)
    options = dj.DATABASES["default"]["OPTIONS"]
    assert isinstance(options, dict)  # typed object: demo.settings mixes value types
    max_size = options["pool"]["max_size"]
    with override_settings(OMNITENANT_CONFIG={**config, "ASGI_THREADS": max_size}):
        assert checks.check_asgi_threads() == []
    with override_settings(OMNITENANT_CONFIG={**config, "ASGI_THREADS": max_size + 1}):
        (warning,) = checks.check_asgi_threads()
        assert warning.id == "omnitenant.W040"
    with override_settings(OMNITENANT_CONFIG={**config, "ASGI_THREADS": 0}):
        (error,) = checks.check_asgi_threads()
        assert error.id == "omnitenant.E041"
    assert "omnitenant.W040" not in {m.id for m in django_checks.run_checks()}


# Real uvicorn.


@pytest.fixture(scope="module")
def entry_server() -> Iterator[Server]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.asgi_entry_app.settings",
        "OMNITENANT_ASGI_THREADS": "2",
        "OMNITENANT_POOL_MIN": "1",
        "OMNITENANT_POOL_MAX": "2",
    }
    srv = Server("tests.asgi_entry_app.asgi:application", env=env, args=("--http", "httptools"))
    yield srv
    srv.stop()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_thousands_of_concurrent_requests_over_many_tenants(entry_server: Server) -> None:
    paths = ["/whoami/", "/whoami-sync/", "/astate/", "/state/"]
    total, clients = 3000, 64
    results: list[tuple[int, str, str | None, int]] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=entry_server.url, limits=limits, timeout=30) as client:

        async def worker(first: int) -> None:
            # 64 clients, each with requests in flight one after the other: all 64 concurrent.
            for i in range(first, total, clients):
                tenant_id = TENANT_IDS[i % len(TENANT_IDS)]
                response = await client.get(
                    paths[i % len(paths)], headers={"host": f"{tenant_id}.localhost"}
                )
                data = response.json() if response.status_code == 200 else {}
                results.append(
                    (response.status_code, tenant_id, data.get("marker"), data.get("threads", 0))
                )

        await asyncio.gather(*(worker(w) for w in range(clients)))
    assert len(results) == total
    bad = [r for r in results if r[0] != 200 or r[1] != r[2]]
    assert bad == [], (bad[:5], len(bad), entry_server.output()[-3000:])
    # uvicorn's main thread, 2 request threads, the pool's workers and the listener: bounded.
    assert max(r[3] for r in results) <= 12
    assert "Traceback" not in entry_server.output()


@pytest.fixture(scope="module", params=["h11", "httptools"])
def release_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.asgi_entry_app.settings",
        "OMNITENANT_ASGI_THREADS": str(POOL_MAX),
        "OMNITENANT_POOL_MIN": "1",
        "OMNITENANT_POOL_MAX": str(POOL_MAX),
        "OMNITENANT_POOL_TIMEOUT": "3",
    }
    args = ("--http", request.param)
    srv = Server("tests.asgi_entry_app.asgi:application", env=env, args=args)
    yield srv
    srv.stop()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_connect_requests_do_not_drain_the_pool(release_server: Server) -> None:
    await asyncio.gather(
        *(
            asyncio.to_thread(
                raw_request, release_server, connect_request(TENANT_IDS[i % 5]), timeout=1
            )
            for i in range(HOSTILE)
        )
    )
    assert_every_answer_right(await checked_load(release_server))
    assert "PoolTimeout" not in release_server.output()


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/astream/", "/sync-stream/"])
async def test_clients_resetting_mid_response_do_not_drain_the_pool(
    release_server: Server, path: str
) -> None:
    for i in range(HOSTILE):
        got = await asyncio.to_thread(
            raw_request, release_server, get_request(TENANT_IDS[i % 5], path), reset_after=1024
        )
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
    assert_every_answer_right(await checked_load(release_server))
    assert "PoolTimeout" not in release_server.output()


def test_the_in_process_tests_used_one_thread() -> None:
    names = [t.name for t in threading.enumerate() if t.name.startswith("omnitenant-test")]
    assert names == ["omnitenant-test-0_0"]


# Daphne (Channels' server) and Hypercorn run the entry point too.

OTHER_SERVERS = {
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}"],
    "hypercorn": ["-m", "hypercorn", "--bind", "127.0.0.1:{port}", "--workers", "1"],
}


@pytest.fixture(scope="module", params=sorted(OTHER_SERVERS))
def other_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    import os
    import socket
    import subprocess
    import sys
    import time

    from .conftest import ROOT, free_port

    name: str = request.param
    port = free_port()
    log = (tmp_path_factory.mktemp(name) / f"{name}.log").open("w")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.asgi_entry_app.settings",
        "OMNITENANT_ASGI_THREADS": "2",
    }
    args = [arg.format(port=port) for arg in OTHER_SERVERS[name]]
    cmd = [sys.executable, *args, "tests.asgi_entry_app.asgi:application"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{name} exited early"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_other_servers_serve_every_tenant_through_the_entry_point(other_server: str) -> None:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=other_server, limits=limits, timeout=30) as client:

        async def one(i: int) -> tuple[int, str, str | None]:
            tenant_id = TENANT_IDS[i % len(TENANT_IDS)]
            response = await client.get("/whoami/", headers={"host": f"{tenant_id}.localhost"})
            marker = response.json().get("marker") if response.status_code == 200 else None
            return response.status_code, tenant_id, marker

        results = await asyncio.gather(*(one(i) for i in range(400)))
    assert [r for r in results if r[0] != 200 or r[1] != r[2]] == []
