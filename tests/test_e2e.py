"""The demo under a real uvicorn: thousands of concurrent requests over 24 schema tenants."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

from .conftest import TENANT_IDS, Server

pytestmark = pytest.mark.e2e


def stat_calls(pattern: str, *, reset: bool = False) -> int:
    """Calls of statements matching ``pattern`` that the server ran (pg_stat_statements)."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            conn.execute("SELECT pg_stat_statements_reset()")
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE %s AND "
            "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [pattern],
        ).fetchone()
    return int(row[0]) if row else 0


async def hammer(server: Server, n: int, concurrency: int) -> list[tuple[str, str, int, Any]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

        async def one(i: int) -> tuple[str, str, int, Any]:
            tenant_id = random.choice(TENANT_IDS)
            path = "/whoami-sync/" if i % 5 == 0 else "/whoami/"
            async with sem:
                r = await client.get(path, headers={"host": f"{tenant_id}.localhost"})
            return tenant_id, path, r.status_code, r.json() if r.status_code == 200 else r.text

        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.asyncio
async def test_thousands_of_concurrent_requests_each_sees_only_its_tenant(
    live_server: Server,
) -> None:
    await hammer(live_server, 200, 32)  # warm every tenant into the registry
    stat_calls("", reset=True)

    results = await hammer(live_server, 3000, 64)

    statuses = [status for _, _, status, _ in results]
    mismatches = [
        (tenant_id, path, body)
        for tenant_id, path, status, body in results
        if status != 200
        or body["tenant"] != tenant_id
        or body["marker"] != tenant_id
        or body["context"] != tenant_id
    ]
    assert len(results) == 3000
    assert mismatches == []
    assert max(statuses) < 500
    assert len({t for t, _, _, _ in results}) == len(TENANT_IDS)
    # Warm: no tenant lookup reached the database, and at most one SET per request.
    assert stat_calls("%customers_domain%") == 0
    assert stat_calls("SELECT set_config($1%") <= len(results)
    assert "Traceback" not in live_server.output()


def raw_request(port: int, host_header: bytes | None, path: bytes = b"/whoami/") -> int:
    request = b"GET " + path + b" HTTP/1.1\r\n"
    if host_header is not None:
        request += b"Host: " + host_header + b"\r\n"
    request += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


HOSTILE = [
    b"nobody.localhost", b"a..b", b"-x.localhost", b"x" * 400, b"t01.localhost:99999",
    b"t01.localhost:abc", b"t01.localhost\xff", b"\xc3\xbcml.localhost", b"t01.localhost@evil",
    b"t01_x.localhost", b"[::1", b"' OR 1=1 --", b"t01.localhost/../t02", b"%74%30%31.localhost",
    b"t01.localhost, t02.localhost",
]  # fmt: skip


def test_hostile_hosts_and_paths_never_500(live_server: Server) -> None:
    for host in HOSTILE:
        assert raw_request(live_server.port, host) in (400, 404), host
    assert raw_request(live_server.port, b"t01.localhost") == 200
    for path in (
        b"/../../etc/passwd",
        b"/t/../whoami/",
        b"/%00/",
        b"/whoami/?x=%ff",
        b"/" + b"a" * 2000,
    ):
        assert raw_request(live_server.port, b"t01.localhost", path) in (200, 400, 404), path
    output = live_server.output()
    assert "Traceback" not in output and "Internal Server Error" not in output


@pytest.mark.asyncio
async def test_writes_land_in_their_own_schema(live_server: Server) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:

        async def post(tenant_id: str, i: int) -> int:
            r = await client.post(
                "/notes/",
                json={"text": f"{tenant_id}-{i}"},
                headers={"host": f"{tenant_id}.localhost"},
            )
            return r.status_code

        chosen = TENANT_IDS[16:22]
        statuses = await asyncio.gather(*(post(t, i) for t in chosen for i in range(15)))
        assert set(statuses) == {201}
        for tenant_id in chosen:
            r = await client.get("/notes/", headers={"host": f"{tenant_id}.localhost"})
            texts = {n["text"] for n in r.json()["notes"]}
            assert texts >= {f"{tenant_id}-{i}" for i in range(15)}
            assert all(text.startswith(f"{tenant_id}-") for text in texts if "-" in text)
