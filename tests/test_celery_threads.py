"""Celery ``--pool threads``: worker threads run many tenants' tasks at once and never mix them.

A thread that ran one tenant's task must not keep it for the next task (tasks queued with no
tenant are interleaved to catch exactly that).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from celery import chord

from omnitenant_async import tenant_context

from .celery_worker import Worker, results, worker_fixture
from .conftest import TENANT_IDS

pytestmark = pytest.mark.e2e

IDS = TENANT_IDS[12:24]  # other schema tenants than test_celery's


@pytest.fixture(scope="module")
def worker(tenants: dict[str, Any]) -> Iterator[Worker]:
    yield from worker_fixture("threads", 8)


def test_threads_pool_runs_interleaved_tenants_and_no_tenant_tasks_apart(
    worker: Worker, tenants: dict[str, Any]
) -> None:
    from demo.notes.tasks import whoami

    jobs: list[str | None] = [tid for tid in IDS for _ in range(25)] + [None] * 50
    random.Random(11).shuffle(jobs)

    def publish(tid: str | None) -> tuple[str | None, Any]:
        with tenant_context(tenants[tid] if tid else None):
            return tid, whoami.delay(tag=str(tid))

    with ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(publish, jobs))
    answers = results([r for _, r in sent])
    assert len(answers) == 350
    for (tid, _), answer in zip(sent, answers, strict=True):
        assert answer == {"tenant": tid, "marker": tid, "tag": str(tid)}


def test_threads_pool_chords_and_retries(worker: Worker, tenants: dict[str, Any]) -> None:
    from demo.notes.tasks import collect, flaky, marker

    sent = []
    for tid in IDS:
        with tenant_context(tenants[tid]):
            sent.append((tid, chord(marker.si() for _ in range(4))(collect.s()), flaky.delay(1)))
    for tid, chorded, retried in sent:
        assert chorded.get(timeout=60) == {"parts": [tid] * 4, "marker": tid}
        assert retried.get(timeout=60) == {"marker": tid, "retries": 1}
