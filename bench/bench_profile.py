"""Where a request's time goes: plain Django vs the tenant layer, profiled under load.

Normally started by ``bench/run_profile.sh``. Each variant runs in a uvicorn process (one
worker, the same flags as the other benchmarks) under ``cProfile``, which on Python >= 3.12
records every thread (``sys.monitoring``), so the request threads' ORM work is included.
wrk drives it for ``--seconds`` after a warm-up; profiling covers only the loaded window.

Self time is charged to the package that owns each function, per request, and the functions
of ``omnitenant_async`` are listed. Profiling slows everything (function calls cost more), so
read the shares and the differences between the variants, not the absolute microseconds.

Modes:

- ``entry``: plain Django vs 50 schema tenants, both through ``omnitenant_async.asgi``;
- ``pooler``: plain Django vs the schema engine with ``POOLER = "transaction"``, both behind
  the same PgBouncer, Django's own ``ASGIHandler``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import importlib
import os
import pstats
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TypedDict

from bench.common import conninfo
from bench.harness import (
    DB_TENANCY,
    OUT,
    ROOT,
    TENANT_HOSTS,
    Process,
    append_results,
    free_port,
    log,
    run_wrk,
    seed_ours,
    wrk_cmd,
)


@dataclass
class Mode:
    app: str
    env: dict[str, str]
    label: str
    plain: dict[str, str]
    tenant: dict[str, str] = field(default_factory=dict)


MODES = {
    "entry": Mode(
        app="bench.asgi_entry",
        env={"DJANGO_SETTINGS_MODULE": "bench.asgi_settings", "OMNITENANT_BENCH_ENTRY": "ours"},
        plain={"OMNITENANT_BENCH_TENANT": "0"},
        tenant={"OMNITENANT_BENCH_TENANT": "1"},
        label="both through omnitenant_async.asgi (reused request threads)",
    ),
    "pooler": Mode(
        app="bench.asgi",
        env={"DJANGO_SETTINGS_MODULE": "bench.pooler_settings"},
        plain={"OMNITENANT_BENCH_VARIANT": "plain"},
        label="both behind PgBouncer (transaction mode), Django's ASGIHandler",
    ),
}
WAITS = ("SimpleQueue", "acquire", "epoll", "select", "sleep", "wait")


# --------------------------------------------------------------------------------------------
# The profiled server (a child process)
# --------------------------------------------------------------------------------------------


def serve(app_module: str, port: int, out: Path) -> None:
    """uvicorn in this process; SIGUSR1 starts profiling, SIGUSR2 dumps it and exits."""
    import uvicorn

    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out)
        os._exit(0)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    application = importlib.import_module(app_module).application
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        http="h11", loop="asyncio",
    )  # fmt: skip
    uvicorn.Server(config).run()


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------

# pstats' table: (file, line, function) -> (primitive calls, calls, self s, cumulative s, callers)
type Func = tuple[str, int, str]
type StatsTable = dict[Func, tuple[int, int, float, float, dict[Func, object]]]


class Analysis(TypedDict):
    requests: int
    total_us: float
    owners: dict[str, float]
    ours: list[tuple[float, float, float, str]]  # cumulative µs, self µs, calls, function


def owner(filename: str, function: str) -> str:
    """The package a function belongs to; C functions by what they do."""
    if "omnitenant_async" in filename:
        return "omnitenant_async"
    if filename.startswith(str(ROOT / "bench")) or "/bench/" in filename:
        return "the view (bench)"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    if filename == "~":
        if any(w in function for w in WAITS):
            return "waiting (queues, locks, epoll)"
        if "socket" in function:
            return "socket I/O"
        return "C builtins"
    if "/lib/python3" in filename:
        return "stdlib: " + filename.rsplit("/lib/python3", 1)[1].split("/")[1].removesuffix(".py")
    return filename


def analyse(path: Path, requests: int) -> Analysis:
    # Stats keeps the table in an attribute its type stubs do not declare.
    stats: StatsTable = vars(pstats.Stats(str(path)))["stats"]
    by_owner: dict[str, float] = collections.defaultdict(float)
    ours: list[tuple[float, float, float, str]] = []
    for (filename, _line, function), (_cc, calls, self_s, cum_s, _callers) in stats.items():
        by_owner[owner(filename, function)] += self_s
        if "omnitenant_async" in filename:
            name = f"{filename.split('omnitenant_async/')[1]}:{function}"
            ours.append((cum_s / requests * 1e6, self_s / requests * 1e6, calls / requests, name))
    total = sum(by_owner.values())
    return {
        "requests": requests,
        "total_us": total / requests * 1e6,
        "owners": {
            k: v / requests * 1e6 for k, v in sorted(by_owner.items(), key=lambda kv: -kv[1])
        },
        "ours": sorted(ours, reverse=True)[:15],
    }


# --------------------------------------------------------------------------------------------
# Driving it
# --------------------------------------------------------------------------------------------


def wrk(port: int, seconds: int, hosts: list[str]) -> int:
    result = run_wrk(wrk_cmd(port, hosts, seconds))
    if result["errors_total"]:
        raise RuntimeError(f"wrk saw errors: {result['errors']}")
    return result["requests"]


def mode_env(mode: str) -> dict[str, str]:
    """``pooler``: the servers reach PostgreSQL through PgBouncer, the listener directly."""
    if mode != "pooler":
        return {}
    port = os.environ.get("OMNITENANT_PGBOUNCER_TX_PORT")
    if not port:
        raise SystemExit("OMNITENANT_PGBOUNCER_TX_PORT is not set: run bench/run_profile.sh")
    return {"OMNITENANT_PG_PORT": port, "OMNITENANT_INVALIDATION_DSN": conninfo(DB_TENANCY)}


def profile_variant(mode: str, variant: str, seconds: int) -> Analysis:
    spec = MODES[mode]
    port = free_port()
    out = OUT / f"profile-{mode}-{variant}.prof"
    env = {**os.environ, **spec.env, **(spec.plain if variant == "plain" else spec.tenant)}
    env.update(mode_env(mode), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "bench.bench_profile", "serve", spec.app, str(port), str(out)]
    hosts = ["localhost"] if variant == "plain" else TENANT_HOSTS
    server = Process("the profiled server", cmd, port, env)
    try:
        wrk(port, 3, hosts)  # warm-up: pools filled, registry warm
        server.proc.send_signal(signal.SIGUSR1)
        requests = wrk(port, seconds, hosts)
        server.proc.send_signal(signal.SIGUSR2)
        server.proc.wait(timeout=60)
    finally:
        server.stop(grace=0)
    log(f"{mode}/{variant}: {requests} requests profiled ({requests / seconds:.0f} req/s)")
    return analyse(out, requests)


def report(mode: str, seconds: int, results: dict[str, Analysis]) -> str:
    plain, tenant = results["plain"], results["tenant"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Profile ({mode}): {MODES[mode].label}", "",
        f"Run {now}. Command: `bench/run_profile.sh --mode {mode} --seconds {seconds}`. "
        "uvicorn (one worker) under cProfile, all threads, wrk `-t2 -c64`; self time per "
        "request by owning package (profiled: read shares and differences).", "",
        f"Requests/s under the profiler: plain {plain['requests'] / seconds:.0f}, "
        f"tenant {tenant['requests'] / seconds:.0f}. Total self time per request: plain "
        f"{plain['total_us']:.0f} µs, tenant {tenant['total_us']:.0f} µs "
        f"({tenant['total_us'] / plain['total_us']:.3f}x).", "",
        "| owner | plain µs/req | tenant µs/req | difference |", "|---|---:|---:|---:|",
    ]  # fmt: skip
    owners = sorted(
        set(plain["owners"]) | set(tenant["owners"]), key=lambda k: -tenant["owners"].get(k, 0)
    )
    for name in owners[:14]:
        a, b = plain["owners"].get(name, 0.0), tenant["owners"].get(name, 0.0)
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    lines += [
        "",
        "omnitenant_async functions in the tenant variant (µs per request, profiled):",
        "",
        "| function | cumulative | self | calls / request |",
        "|---|---:|---:|---:|",
    ]
    for cum, own, calls, name in tenant["ours"]:
        lines.append(f"| `{name}` | {cum:.1f} | {own:.1f} | {calls:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(argv[1], int(argv[2]), Path(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="entry")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-write", dest="write", action="store_false")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    seed_ours()
    results = {v: profile_variant(args.mode, v, args.seconds) for v in ("plain", "tenant")}
    text = report(args.mode, args.seconds, results)
    print(text)
    if args.write:
        append_results("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
