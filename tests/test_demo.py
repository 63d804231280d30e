"""The README's demo command works end to end (its own PostgreSQL, set-up, uvicorn), and what a
new user hits around it: manage.py against the running demo, a busy port, stray log files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import ROOT, Server, free_port

pytestmark = pytest.mark.e2e


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITENANT_")}
    return {**env, **extra}


def run_demo(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """scripts/demo; on timeout TERM its process group, so its trap stops what it started."""
    proc = subprocess.Popen(
        ["bash", "scripts/demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"scripts/demo did not stop within {timeout} s:\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_demo_command_serves_the_demo() -> None:
    result = subprocess.run(
        ["bash", "scripts/demo", "--check"], cwd=ROOT, env=clean_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK: demo answered HTTP 200" in output
    for tenant_id in ("acme", "globex", "initech"):
        assert f"http://{tenant_id}.localhost:" in output
    # It says how to run manage.py against it, and that environment works from a clean shell
    # (--check runs showtenants with it and prints the table).
    assert "manage.py against this demo, from another terminal: source " in output
    assert "/demo-env && .venv/bin/python demo/manage.py showtenants" in output
    table = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"tenant_id", "acme", "globex", "initech", "umbrella"} <= set(table)
    assert not (ROOT / ".demo-env").exists() or "(pid" in (ROOT / ".demo-env").read_text()


def test_demo_refuses_a_busy_port_before_set_up() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        result = run_demo(clean_env(PORT=str(port)))
    assert result.returncode == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "PORT=" in result.stderr and "scripts/demo" in result.stderr
    assert "PostgreSQL" not in result.stderr and "venv" not in result.stderr  # no set-up ran
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_demo_refuses_a_bad_port(port: str) -> None:
    result = run_demo(clean_env(PORT=port), timeout=30)
    assert result.returncode == 2 and f"PORT={port} is not a TCP port" in result.stderr


def test_manage_py_fails_fast_when_the_database_is_unreachable() -> None:
    """No 20 s wait on the pool and no traceback: one line naming .demo-env."""
    env = clean_env(OMNITENANT_PG_HOST="127.0.0.1", OMNITENANT_PG_PORT=str(free_port()))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "demo/manage.py", "showtenants"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert elapsed < 8, elapsed
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: Cannot reach the demo's PostgreSQL at 127.0.0.1:")
    assert "source .demo-env" in lines[0] and "Traceback" not in result.stderr
    # Commands that need no database still work without one.
    assert subprocess.run(
        [sys.executable, "demo/manage.py", "help", "showtenants"], cwd=ROOT, env=env,
        capture_output=True, timeout=60,
    ).returncode == 0  # fmt: skip


@pytest.mark.skipif(
    not os.environ.get("OMNITENANT_INNER_LOG_TEST"),
    reason="started by test_server_logs_stay_in_the_runs_own_directory",
)
def test_inner_start_a_server() -> None:
    server = Server("demo.asgi:application")
    server.stop()
    print(f"LOG={server.log}")


def test_server_logs_stay_in_the_runs_own_directory() -> None:
    """A pytest run that starts uvicorn leaves no omnitenant-uvicorn-*.log behind in $TMPDIR."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
             "tests/test_demo.py::test_inner_start_a_server"],
            cwd=ROOT, env={**os.environ, "TMPDIR": tmp, "OMNITENANT_INNER_LOG_TEST": "1"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        [log] = [line[4:] for line in result.stdout.splitlines() if line.startswith("LOG=")]
        assert Path(log).parent.parent == Path(tmp)  # $TMPDIR/omnitenant-run-*/...log
        assert os.listdir(tmp) == [], "the run left files behind"
