"""Where the HTTP benchmark's servers spend their time: py-spy samples of a live uvicorn.

py-spy (installed into ``bench/.venvs/tools``) samples every thread of the server, wall clock,
while wrk loads it; each sampled stack counts as waiting on something (the innermost frame
blocks) or as running the package that owns its innermost non-stdlib frame.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypedDict

from bench.harness import BENCH, OUT, ROOT, Server, log, run_logged

TOOLS_VENV = BENCH / ".venvs" / "tools"
PACKAGES = {"omnitenant_async", "django", "asgiref", "psycopg", "psycopg_pool", "uvicorn", "h11"}

# What a sampled stack is waiting on, from its frames (innermost match wins).
WAITS = (
    ("WaitingClient.wait", "waiting for a pool connection"),
    ("Connection.wait", "waiting for PostgreSQL"),
    ("Thread.start", "starting the request's thread"),
    ("Thread.join", "joining the request's thread"),
    ("Scheduler.run", "idle pool thread"),
    ("Queue.get", "idle pool thread"),
    ("_worker", "idle executor thread"),
    ("select", "event loop idle"),
)
WAIT_LEAVES = ("Condition.wait", "Event.wait", "Queue.get", "Thread.join", "_worker", "select")


class ProfileShares(TypedDict):
    samples: int
    shares: dict[str, float]
    running: float
    omnitenant_in_running: float


def ensure_py_spy() -> str:
    exe = TOOLS_VENV / "bin" / "py-spy"
    if not exe.exists():
        log(f"installing py-spy into {TOOLS_VENV.relative_to(ROOT)}")
        run_logged([sys.executable, "-m", "venv", str(TOOLS_VENV)], cwd=ROOT, env={}, name="tools")
        pip = [str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"]
        run_logged(pip, cwd=ROOT, env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, name="tools-pip")
    return str(exe)


def package_of(frame: str) -> str | None:
    """``func (django/db/utils.py:12)`` -> ``django``; None for the standard library."""
    path = frame.rpartition(" (")[2]
    top = path.split("/", 1)[0].removesuffix(")").partition(":")[0].removesuffix(".py")
    return top if top in PACKAGES else None


def classify_stack(frames: list[str]) -> str:
    """``waiting: <what>`` when the innermost frame blocks, else the package running."""
    names = [f.rpartition(" (")[0].rpartition(".")[2] if " (" in f else f for f in frames]
    full = [f.rpartition(" (")[0] for f in frames]
    if full and (full[-1] in WAIT_LEAVES or names[-1] in WAIT_LEAVES or full[-1].endswith("wait")):
        for marker, what in WAITS:
            if any(name == marker or name.endswith("." + marker) for name in reversed(full)):
                return f"waiting: {what}"
        return "waiting: other"
    owner = next((p for p in map(package_of, reversed(frames)) if p), "stdlib")
    return f"running: {owner}"


def profile_shares(raw: Path) -> ProfileShares:
    """Sampled thread stacks by what they wait on or which package runs (the standard library
    is charged to its caller), and omnitenant_async's share of the running samples."""
    found: dict[str, int] = {}
    total = running = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        kind = classify_stack(frames)
        found[kind] = found.get(kind, 0) + n
        total += n
        if kind.startswith("running"):
            running += n
    shares = {k: round(v / total, 3) for k, v in sorted(found.items(), key=lambda kv: -kv[1])}
    return {
        "samples": total,
        "shares": shares,
        "running": round(running / total, 3),
        "omnitenant_in_running": round(found.get("running: omnitenant_async", 0) / running, 3)
        if running
        else 0.0,
    }


def profile(
    servers: Mapping[str, Server],
    keys: Iterable[str],
    seconds: int,
    wrk_cmd: Callable[[Server, int], list[str]],
) -> dict[str, ProfileShares]:
    """``seconds`` of py-spy samples of each server in ``keys`` while wrk loads it
    (``wrk_cmd(server, seconds)``: the benchmark's command line)."""
    py_spy = ensure_py_spy()
    found: dict[str, ProfileShares] = {}
    for key in keys:
        server = servers[key]
        raw = OUT / f"profile-{key}.txt"
        wrk = subprocess.Popen(wrk_cmd(server, seconds + 2), stdout=subprocess.DEVNULL)
        try:
            time.sleep(1)
            subprocess.run(
                [py_spy, "record", "-p", str(server.pid), "-d", str(seconds), "-r", "50",
                 "-f", "raw", "-o", str(raw)],
                check=True, capture_output=True,
            )  # fmt: skip
        finally:
            wrk.wait()
        found[key] = profile_shares(raw)
        log(f"profile {key}: {found[key]}")
    return found
