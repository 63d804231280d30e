"""Celery tasks carry the tenant: a real prefork worker on Redis, 12 schema + 2 database tenants.

Tasks are queued from sync code, threads, ``async def`` views under uvicorn and a Channels
consumer; every result is checked against the marker row of the tenant it was queued in.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import websockets
from celery import chain, chord, group
from django.db import connections

from omnitenant_async import tenant_context, use_master_db
from omnitenant_async.celery import (
    HEADER_TENANT_ID,
    for_each_tenant,
    run_for_tenant,
    tenant_headers,
)
from omnitenant_async.provisioning import get_tenant_backend
from omnitenant_async.utils import get_tenant_model

from .celery_worker import Worker, group_values, require_redis, results, worker_fixture
from .conftest import TENANT_IDS, Server
from .database_helpers import drop_databases_like, main_server, prefix

pytestmark = pytest.mark.e2e

SCHEMA_IDS = TENANT_IDS[:12]
DB_IDS = ["celdba", "celdbb"]


@pytest.fixture(scope="module")
def worker(tenants: dict[str, Any]) -> Iterator[Worker]:
    yield from worker_fixture("prefork", 2)


@pytest.fixture(scope="module")
def db_tenants(tenants: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from demo.seed import create_database_tenant

    require_redis()
    drop_databases_like(main_server(), prefix() + "cel")

    def create(tenant_id: str) -> Any:
        try:
            database = main_server().database_config(prefix() + tenant_id)
            return create_database_tenant(
                tenant_id, database=database, domains=[f"{tenant_id}.localhost"]
            )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        created = {t.tenant_id: t for t in pool.map(create, DB_IDS)}
    yield created
    for tenant in created.values():
        get_tenant_backend(tenant).delete(drop=True)


@pytest.fixture(scope="module")
def all_tenants(tenants: dict[str, Any], db_tenants: dict[str, Any]) -> dict[str, Any]:
    return {**{i: tenants[i] for i in SCHEMA_IDS}, **db_tenants}


@pytest.fixture(scope="module")
def web(worker: Worker, all_tenants: dict[str, Any]) -> Iterator[Server]:
    server = Server(
        "demo.celery_asgi:application",
        env={"DJANGO_SETTINGS_MODULE": "demo.celery_settings", "OMNITENANT_REGISTRY_TTL": "3600"},
    )
    yield server
    server.stop()


def queue_in(tenant: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
    with tenant_context(tenant):
        return task.delay(*args, **kwargs)


# -- sync code -----------------------------------------------------------------------------------


def test_hundreds_of_interleaved_tasks_each_run_in_their_tenant(
    worker: Worker, all_tenants: dict[str, Any]
) -> None:
    from demo.notes.tasks import whoami

    jobs = [(tid, f"{tid}-{i}") for tid in all_tenants for i in range(25)]
    random.Random(10).shuffle(jobs)

    def publish(job: tuple[str, str]) -> tuple[str, str, Any]:
        tid, tag = job
        return tid, tag, queue_in(all_tenants[tid], whoami, tag=tag)

    with ThreadPoolExecutor(6) as pool:  # publishers in threads, each in its own tenant
        sent = list(pool.map(publish, jobs))
    answers = results([r for _, _, r in sent])
    assert len(answers) == 350
    for (tid, tag, _), answer in zip(sent, answers, strict=True):
        assert answer == {"tenant": tid, "marker": tid, "tag": tag}


def test_no_tenant_runs_with_none_and_tenant_models_fail_closed(worker: Worker) -> None:
    from demo.notes.tasks import marker, whoami

    assert whoami.delay("x").get(timeout=30) == {"tenant": None, "marker": None, "tag": "x"}
    with use_master_db():  # public is no tenant either
        failed = marker.delay()
    with pytest.raises(Exception) as info:
        failed.get(timeout=30)
    assert type(info.value).__name__ == "NoTenantActive"


def test_explicit_tenant_id_overrides_the_context(worker: Worker, tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import whoami

    with tenant_context(tenants["t01"]):
        other = whoami.apply_async(kwargs={"tag": "o"}, tenant_id="t02")
        none = whoami.apply_async(tenant_id=None)
        by_instance = whoami.apply_async(tenant_id=tenants["t03"])
    assert other.get(timeout=30) == {"tenant": "t02", "marker": "t02", "tag": "o"}
    assert none.get(timeout=30)["tenant"] is None
    assert by_instance.get(timeout=30)["marker"] == "t03"


def test_send_task_by_name_and_signatures_carry_the_tenant(
    worker: Worker, tenants: dict[str, Any]
) -> None:
    from demo.celery import app
    from demo.notes.tasks import marker

    with tenant_context(tenants["t04"]):
        by_name = app.send_task("demo.notes.tasks.marker")
        explicit = app.send_task("demo.notes.tasks.marker", tenant_id="t05")
        sig = marker.si().apply_async()
    with tenant_context(tenants["t06"]):
        later = marker.si()  # the tenant of the moment of sending counts, not of building
    with tenant_context(tenants["t07"]):
        later_result = later.delay()
    assert results([by_name, explicit, sig, later_result]) == ["t04", "t05", "t04", "t07"]


def test_chain_group_and_chord_run_every_part_in_the_tenant(
    worker: Worker, all_tenants: dict[str, Any]
) -> None:
    from demo.notes.tasks import add_marker, collect, marker

    sent = []
    for tid, tenant in all_tenants.items():
        with tenant_context(tenant):
            sent.append((tid, "chain", chain(add_marker.s(), add_marker.s(), add_marker.s())()))
            sent.append((tid, "group", group(marker.si() for _ in range(3))()))
            sent.append((tid, "chord", chord(marker.si() for _ in range(3))(collect.s())))
    for tid, kind, result in sent:
        value = group_values(result) if kind == "group" else result.get(timeout=60)
        if kind == "chain":
            assert value == [tid] * 3
        elif kind == "group":
            assert value == [tid] * 3
        else:
            assert value == {"parts": [tid] * 3, "marker": tid}


def test_retries_keep_the_tenant(worker: Worker, all_tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import flaky

    sent = [(tid, queue_in(t, flaky, 2)) for tid, t in all_tenants.items()]
    for tid, result in sent:
        assert result.get(timeout=60) == {"marker": tid, "retries": 2}


def test_a_task_queued_inside_a_task_runs_in_its_tenant(
    worker: Worker, tenants: dict[str, Any]
) -> None:
    from demo.celery import app
    from demo.notes.tasks import spawn_marker

    child_id = queue_in(tenants["t08"], spawn_marker).get(timeout=30)
    assert app.AsyncResult(child_id).get(timeout=30) == "t08"


def test_unknown_tenant_fails_the_task_and_never_runs_it(worker: Worker) -> None:
    from demo.notes.tasks import whoami

    result = whoami.apply_async(tenant_id="no-such-tenant")
    with pytest.raises(Exception, match="no-such-tenant.*does not exist") as info:
        result.get(timeout=30)
    assert type(info.value).__name__ == "TaskTenantNotFound"


def test_a_deleted_tenant_fails_the_task(worker: Worker, tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import whoami
    from demo.seed import create_tenant

    tenant = create_tenant("celgone")
    get_tenant_backend(tenant).delete(drop=True)
    result = whoami.apply_async(tenant_id="celgone")  # queued before the worker ever saw it
    with pytest.raises(Exception, match="celgone"):
        result.get(timeout=30)


def test_logging_inside_tasks_carries_the_tenant(worker: Worker, tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import log_tenant

    sent = [queue_in(tenants[t], log_tenant, f"hello {t}") for t in SCHEMA_IDS] + [
        log_tenant.delay("nobody")
    ]
    assert results(sent) == [f"[{t}] hello {t}" for t in SCHEMA_IDS] + ["[-] nobody"]


def test_for_each_tenant_queues_one_task_per_tenant(
    worker: Worker, all_tenants: dict[str, Any]
) -> None:
    from demo.notes.tasks import whoami

    with use_master_db():
        every = set(get_tenant_model().objects.values_list("tenant_id", flat=True))
    answers = results(for_each_tenant(whoami, kwargs={"tag": "beat"}))
    assert {a["tenant"] for a in answers} == every
    assert all(a["marker"] in (a["tenant"], "?") for a in answers)
    assert {a["tenant"] for a in answers} >= set(all_tenants)
    chosen = for_each_tenant(whoami, tenants=[all_tenants["celdba"], "t09"])
    assert [a["marker"] for a in results(chosen)] == ["celdba", "t09"]
    assert run_for_tenant(whoami, "celdbb", tag="sh").get(timeout=30)["marker"] == "celdbb"


def test_plain_tasks_ignore_the_header(worker: Worker, tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import plain_context

    assert queue_in(tenants["t01"], plain_context).get(timeout=30) is None


# -- eager (no worker) ---------------------------------------------------------------------------


def test_eager_apply_keeps_the_callers_tenant_or_the_explicit_one(tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import whoami

    with tenant_context(tenants["t02"]):
        assert whoami.apply().get()["marker"] == "t02"
        assert whoami.apply(tenant_id="t03").get()["marker"] == "t03"
    assert tenant_headers(None) == {HEADER_TENANT_ID: "", "omnitenant_isolation": ""}


# -- async def views under uvicorn, and a Channels consumer --------------------------------------


@pytest.mark.asyncio
async def test_async_views_under_uvicorn_queue_in_their_tenant(
    web: Server, all_tenants: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=web.url, timeout=30) as client:

        async def call(tid: str, via: str) -> tuple[str, list[str]]:
            params = {"n": "10", "via": via, "tag": f"{tid}-{via}"}
            host = {"Host": f"{tid}.localhost"}
            response = await client.get("/celery/queue/", params=params, headers=host)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["tenant"] == tid
            return f"{tid}-{via}", body["ids"]

        calls = [call(tid, via) for tid in all_tenants for via in ("thread", "async")]
        answered = await asyncio.gather(*calls)
    await asyncio.to_thread(_check_tagged, answered, 280)


def _check_tagged(answered: list[tuple[str, list[str]]], expected: int) -> None:
    from demo.celery import app

    count = 0
    for tag, ids in answered:
        tid = tag.split("-")[0]
        for value in results([app.AsyncResult(i) for i in ids]):
            assert value == {"tenant": tid, "marker": tid, "tag": tag}
            count += 1
    assert count == expected


@pytest.mark.asyncio
async def test_a_channels_consumer_queues_in_its_tenant(
    web: Server, all_tenants: dict[str, Any]
) -> None:
    async def session(tid: str) -> list[tuple[str, list[str]]]:
        url = f"ws://{tid}.localhost:{web.port}/ws/celery/"
        async with websockets.connect(url, host="127.0.0.1", open_timeout=10) as socket:
            out = []
            for round_ in range(2):
                tag = f"{tid}-ws{round_}"
                await socket.send(json.dumps({"n": 5, "tag": tag}))
                body = json.loads(await asyncio.wait_for(socket.recv(), 20))
                assert body["tenant"] == tid
                out.append((tag, body["ids"]))
            return out

    sessions = await asyncio.gather(*(session(tid) for tid in all_tenants))
    await asyncio.to_thread(_check_tagged, [a for s in sessions for a in s], 140)
