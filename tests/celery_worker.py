"""A real Celery worker process of the demo (``celery -A demo.celery worker``) for the tests.

Started once per test module, stopped by its pid. Its registry TTL is long, so after the first
task of a tenant the worker resolves it without a query.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ROOT, RUN_DIR


def require_redis() -> None:
    if not os.environ.get("OMNITENANT_REDIS_URL"):
        pytest.skip("OMNITENANT_REDIS_URL not set: scripts/test starts a throwaway Redis")


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM when the test process dies (a crashed run leaves none
    behind to steal the next run's tasks from a Redis on the same port)."""
    with_libc = ctypes.CDLL(None, use_errno=True)
    with_libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Worker:
    """``celery worker --pool <pool>`` on the demo's broker; ``stop()`` ends it by pid."""

    def __init__(self, pool: str, concurrency: int = 2) -> None:
        from demo.celery import app

        self.app = app
        self.name = f"{pool}-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self.log = RUN_DIR / f"omnitenant-celery-{self.name}.log"
        app.control.purge()  # nothing left over from an earlier module
        cmd = [
            sys.executable, "-m", "celery", "-A", "demo.celery", "worker", "--pool", pool,
            "--concurrency", str(concurrency), "--loglevel", "warning", "-n", self.name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        env = {
            **os.environ,
            "OMNITENANT_REGISTRY_TTL": "3600",
            "DJANGO_SETTINGS_MODULE": "demo.settings",
        }
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log.read_text()}")
            if self.app.control.ping([self.name], timeout=0.5):
                return
        self.stop()
        raise RuntimeError(f"celery worker did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown: finishes the tasks it holds
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def worker_fixture(pool: str, concurrency: int) -> Iterator[Worker]:
    require_redis()
    worker = Worker(pool, concurrency)
    yield worker
    worker.stop()


def results(async_results: list[Any], timeout: float = 60) -> list[Any]:
    """The return values, in order (raises the first failure)."""
    return [r.get(timeout=timeout) for r in async_results]


def group_values(result: Any, timeout: float = 60) -> list[Any]:
    """A group's return values, its children's states polled with plain backend reads.

    ``GroupResult.get`` waits on the Redis result consumer's pub/sub, which can miss a result
    that lands before it subscribes and then waits out its whole timeout (celery/celery#4925,
    seen here on Celery 5.5 with every task done). A group that never finishes still fails.
    """
    deadline = time.monotonic() + timeout
    while not result.ready():
        if time.monotonic() > deadline:
            states = [child.state for child in result.results]
            raise TimeoutError(f"group {result.id} not ready after {timeout} s: {states}")
        time.sleep(0.05)
    values = []
    for child in result.results:
        if child.failed():
            raise child.result
        values.append(child.result)
    return values
