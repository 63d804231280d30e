"""Python bytecodes per request: the schema engine behind a transaction pooler vs plain Django.

Normally started by ``bench/run_bytecodes.sh`` (a throwaway PostgreSQL and a PgBouncer in
transaction mode). Directly, with both up and OMNITENANT_PG_HOST/PORT and
OMNITENANT_PGBOUNCER_TX_PORT exported::

    .venv/bin/python -m bench.bench_bytecodes [--requests 300] [--concurrency 1]

Each variant of ``bench/bench_pooler.py`` (same settings, view and PgBouncer) runs in a fresh
interpreter that drives Django's ``ASGIHandler`` in-process, without a server or a socket of
its own: a warm-up, then ``--requests`` requests whose every executed bytecode is counted per
function (``sys.settrace`` with opcode events, every thread). The count does not depend on the
machine's speed or load, so where the req/s benchmarks see a few percent in noise of several,
this one sees each function the engine adds to a request, and how much. Not a speed: a
bytecode of ``dict.copy`` and one of a Python loop cost differently, and C code (psycopg's
parsing, the kernel) is not counted at all.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, TypedDict

from bench.common import conninfo
from bench.harness import (
    DB_TENANCY,
    ROOT,
    TENANT_HOSTS,
    Run,
    RunMeta,
    log,
    report_head,
    seed_ours,
)

Counts = dict[str, float]
Message = MutableMapping[str, Any]


class Counter:
    """Executed bytecodes per function (``file:name``), counted while ``on``."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def trace(self, frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            self.counts[(code.co_filename, code.co_name)] += 1
        return self.trace

    def start(self) -> None:
        threading.settrace(self.trace)
        sys.settrace(self.trace)
        frame = sys._getframe(1)
        while frame is not None:  # the frames already running (the coroutine chain)
            frame.f_trace = self.trace
            frame.f_trace_opcodes = True
            frame = frame.f_back  # type: ignore[assignment]

    def stop(self) -> None:
        sys.settrace(None)
        threading.settrace(None)

    def per_request(self, requests: int) -> Counts:
        return {_short(path, name): n / requests for (path, name), n in self.counts.items()}


def _short(path: str, name: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def _scope(host: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/item/", "raw_path": b"/item/", "query_string": b"",
        "root_path": "", "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


App = Callable[..., Awaitable[None]]  # an ASGI application


async def _request(app: App, host: str) -> None:
    """One request through the ASGI app; anything but a 200 fails the run."""
    sent: list[Message] = []
    body_read = False

    async def receive() -> Message:
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(host), receive, send)
    if sent[0].get("status") != 200:
        raise RuntimeError(f"{host}: answered {sent[0].get('status')}, not 200: {sent}")


async def _drive(app: App, hosts: list[str], requests: int, concurrency: int) -> None:
    async def client(k: int, n: int) -> None:
        for i in range(n):
            await _request(app, hosts[(k + i) % len(hosts)])

    await asyncio.gather(*(client(k, requests // concurrency) for k in range(concurrency)))


def child(out: Path, hosts: list[str], warmup: int, requests: int, concurrency: int) -> None:
    """In a fresh interpreter: set Django up, warm up, count ``requests`` requests."""
    import django
    from django.core.asgi import get_asgi_application

    django.setup()
    app: App = get_asgi_application()
    counter = Counter()

    async def run() -> None:
        await _drive(app, hosts, warmup, concurrency)
        counter.start()
        await _drive(app, hosts, requests, concurrency)
        counter.stop()

    asyncio.run(run())
    out.write_text(json.dumps(counter.per_request(requests // concurrency * concurrency)))


class Variant(TypedDict):
    key: str
    label: str
    hosts: list[str]


VARIANTS: list[Variant] = [
    {"key": "plain", "label": "plain Django behind PgBouncer", "hosts": ["localhost"]},
    {"key": "engine", "label": 'schema engine, POOLER = "transaction"', "hosts": TENANT_HOSTS},
]


def count(variant: Variant, bouncer_port: str, ns: argparse.Namespace) -> Counts:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.pooler_settings",
        "OMNITENANT_BENCH_VARIANT": variant["key"],
        "OMNITENANT_PG_PORT": bouncer_port,
        "OMNITENANT_INVALIDATION_DSN": conninfo(DB_TENANCY),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "counts.json"
        cmd = [sys.executable, "-m", "bench.bench_bytecodes", "--child", str(out)]
        cmd += ["--hosts", ",".join(variant["hosts"]), "--warmup", str(ns.warmup)]
        cmd += ["--requests", str(ns.requests), "--concurrency", str(ns.concurrency)]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        counts: Counts = json.loads(out.read_text())
    log(f"{variant['key']}: {sum(counts.values()):.0f} bytecodes per request")
    return counts


class Meta(RunMeta):
    requests: int
    warmup: int
    concurrency: int


def report(meta: Meta, plain: Counts, engine: Counts, top: int) -> str:
    total_plain, total_engine = sum(plain.values()), sum(engine.values())
    ours = {k: v for k, v in engine.items() if k.startswith("omnitenant_async/")}
    others = {
        k: engine.get(k, 0.0) - plain.get(k, 0.0)
        for k in set(plain) | set(engine)
        if not k.startswith("omnitenant_async/")
    }
    lines = [
        *report_head(meta),
        f"Django's `ASGIHandler` driven in-process, {meta['requests']} requests after "
        f"{meta['warmup']} of warm-up, {meta['concurrency']} at a time; the engine's requests "
        f"rotate over {len(TENANT_HOSTS)} tenant hosts. Settings `bench.pooler_settings` "
        "(the variants of `bench/run_pooler.sh`), through PgBouncer in transaction mode.",
        "",
        "| | plain Django | schema engine | engine - plain | ratio |",
        "|---|---:|---:|---:|---:|",
        f"| bytecodes per request | {total_plain:.0f} | {total_engine:.0f} | "
        f"{total_engine - total_plain:+.0f} | {total_engine / total_plain:.3f} |",
        f"| of which `omnitenant_async` | - | {sum(ours.values()):.0f} | | |",
        f"| everything else, difference | | | {sum(others.values()):+.0f} | |",
        "",
        f"The {top} functions of `omnitenant_async` that run the most bytecodes per request:",
        "",
        *(f"- `{k}`: {v:.0f}" for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:top]),
        "",
        f"Outside `omnitenant_async`, the {top} largest differences (engine - plain):",
        "",
        *(
            f"- `{k}`: {v:+.0f}"
            for k, v in sorted(others.items(), key=lambda kv: -abs(kv[1]))[:top]
        ),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300, help="requests counted per variant")
    p.add_argument("--warmup", type=int, default=200, help="requests before counting starts")
    p.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    p.add_argument("--top", type=int, default=15, help="functions listed in the report")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--hosts", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    ns = parse_args(argv)
    if ns.child is not None:
        child(ns.child, ns.hosts.split(","), ns.warmup, ns.requests, ns.concurrency)
        return 0
    port = os.environ.get("OMNITENANT_PGBOUNCER_TX_PORT")
    if not (port and os.environ.get("OMNITENANT_PG_PORT")):
        log("OMNITENANT_PG_PORT / OMNITENANT_PGBOUNCER_TX_PORT not set: run bench/run_bytecodes.sh")
        return 2
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    run = Run("bytecodes")
    seed_ours()  # directly on the server, not through PgBouncer
    plain, engine = (count(v, port, ns) for v in VARIANTS)
    meta: Meta = {
        **run.meta(argv, "PgBouncer and PostgreSQL"),
        "requests": ns.requests, "warmup": ns.warmup, "concurrency": ns.concurrency,
    }  # fmt: skip
    run.write(report(meta, plain, engine, ns.top), {"meta": meta, "plain": plain, "engine": engine})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
