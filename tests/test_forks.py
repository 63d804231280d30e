"""A forked child never shares the pooled connections it inherited from its parent.

``gunicorn --preload``, ``manage.py test --parallel`` and Celery's prefork pool fork after the
pool may hold open connections. Sharing one server session between two processes interleaves
their messages: one reads the other's results - another tenant's rows.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import connection, connections

from omnitenant_async import tenant_context

pytestmark = pytest.mark.usefixtures("tenants")

ROUNDS = 300


def read_markers(tenant: Any, rounds: int) -> list[tuple[str, int]]:
    seen = []
    with tenant_context(tenant):
        for _ in range(rounds):
            with connection.cursor() as cursor:
                cursor.execute("SELECT tenant_id, pg_backend_pid() FROM notes_marker")
                seen.append(cursor.fetchone())
    return seen


def test_child_and_parent_read_concurrently_each_on_its_own_session(
    tenants: dict[str, Any],
) -> None:
    read_markers(tenants["t01"], 5)
    connections.close_all()  # back to the pool: the pool now holds open connections
    parent_pids = {pid for _, pid in read_markers(tenants["t01"], 5)}
    connections.close_all()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            rows = read_markers(tenants["t02"], ROUNDS)
            wrong = [r for r in rows if r[0] != "t02"]
            shared = {pid for _, pid in rows} & parent_pids
            os.write(writer, f"{len(wrong)} {len(shared)}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    rows = read_markers(tenants["t01"], ROUNDS)
    _, status = os.waitpid(child, 0)
    report = os.read(reader, 100).decode().split()
    os.close(reader)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == ["0", "0"], "the child read another tenant or used the parent's session"
    assert all(tenant_id == "t01" for tenant_id, _ in rows)
    # The child exited: its (own) pool closed; the parent's sessions are still alive.
    assert read_markers(tenants["t01"], 3)[0][0] == "t01"
    connections.close_all()
