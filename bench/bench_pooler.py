"""HTTP benchmark behind PgBouncer (transaction mode): the schema engine vs plain Django.

Normally started by ``bench/run_pooler.sh`` (wrk, a throwaway PostgreSQL, a PgBouncer in
transaction mode in front of it). Directly, with both up and OMNITENANT_PG_HOST/PORT and
OMNITENANT_PGBOUNCER_TX_PORT exported::

    .venv/bin/python -m bench.bench_pooler [--duration 10] [--rounds 5]

Both variants serve the same async view (``GET /item/``: one ``Marker.objects.aget()``) under
uvicorn with one worker and the same pool (``bench/common.py``), through the same PgBouncer:

- plain Django (stock ``django.db.backends.postgresql``, one fixed Host), the baseline;
- the schema engine with ``POOLER = "transaction"`` (every transaction carries its own
  ``SET LOCAL search_path``), the Host rotating over 50 schema tenants per request.

Rounds alternate plain Django with the engine; a run's ratio is its req/s over the mean of the
plain runs just before and after it; the report gives medians. Every host's answer is checked
(its own marker) before and after the load.

``--together`` loads both servers at once instead, each with its own wrk (one thread, half the
connections), for ``--rounds`` windows: whatever the shared machine does during a window, it
does to both, so a window's ratio (engine req/s over plain req/s in that window) is free of the
drift between windows that the alternating rounds suffer. The two then share the CPUs, so the
ratio compares the work each needs per request, not the throughput of either alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypedDict

from bench.common import conninfo
from bench.harness import (
    DB_PLAIN,
    DB_TENANCY,
    ROOT,
    TENANT_HOSTS,
    Load,
    LoadMeta,
    PairedSummary,
    QuietWaiter,
    RoundRun,
    Run,
    RunMeta,
    Server,
    Servers,
    Variant,
    WrkResult,
    add_quiet_arguments,
    describe_load,
    log,
    main_thread_cpu,
    paired,
    paired_summary,
    preflight,
    proc_cpu,
    report_head,
    round_order,
    run_wrk,
    seed_ours,
    versions,
    wrk_with_cpu,
)


@dataclass
class Bench(Load):
    quiet_below: float
    quiet_budget: float
    together: bool = False
    against: str = "engine"


def direct_dsn() -> str:
    """libpq conninfo of the server itself (the invalidation listener's LISTEN connection)."""
    return conninfo(DB_TENANCY)


#: ``--against``: what the second server is (the first is always plain Django). Besides the
#: engine over 50 tenants or one, and plain Django again (the method's own bias), three steps
#: from plain Django to the engine: plain Django's project on the engine in session mode (its
#: Python layer alone) and in transaction mode (a ``SET LOCAL`` per statement too, both on the
#: public path), and the engine with one tenant made current by ``bench.fixed_tenant`` instead
#: of ``TenantMiddleware`` (everything but the middleware).
AGAINST = (
    "engine", "engine-one-host", "plain", "backend-session", "backend-transaction",
    "engine-fixed-tenant",
)  # fmt: skip


def build_variants(bouncer_port: str, against: str = "engine") -> list[Variant]:
    """Plain Django, and the second server ``against`` names (see :data:`AGAINST`)."""
    py = sys.executable
    app = "bench.asgi:application"
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.pooler_settings",
        "OMNITENANT_PG_PORT": bouncer_port,
        "OMNITENANT_INVALIDATION_DSN": direct_dsn(),
    }
    plain = Variant("pooler-plain", "plain Django behind PgBouncer", py, app, ROOT, DB_PLAIN,
                    ["localhost"], {**env, "OMNITENANT_BENCH_VARIANT": "plain"})  # fmt: skip
    if against == "plain":
        second = dataclasses.replace(plain, key="pooler-engine", label="plain Django again")
    elif against.startswith("backend-"):
        mode = against.removeprefix("backend-")
        backend_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "bench.backend_settings",
            "OMNITENANT_BENCH_POOLER": mode,
        }
        label = f'plain Django\'s project on the engine, POOLER = "{mode}"'
        second = dataclasses.replace(plain, key="pooler-engine", env=backend_env, label=label)
    else:
        hosts = TENANT_HOSTS if against == "engine" else TENANT_HOSTS[:1]
        engine_env = {**env, "OMNITENANT_BENCH_VARIANT": "engine"}
        if against == "engine-fixed-tenant":
            engine_env["OMNITENANT_BENCH_FIXED_TENANT"] = "1"
        second = Variant("pooler-engine", 'schema engine, POOLER = "transaction"', py, app,
                         ROOT, DB_TENANCY, hosts, engine_env)  # fmt: skip
    return [plain, second]


class PoolerRun(RoundRun):
    app_cpu_ms_per_request: float
    bouncer_cpu_ms_per_request: float | None
    busy_before: float


def measure(
    bench: Bench, server: Server, bouncer_pid: int | None
) -> tuple[WrkResult, float, float | None]:
    """A measured run, then the CPU ms per request of uvicorn and of PgBouncer (if found)."""
    bouncer0 = proc_cpu(bouncer_pid) if bouncer_pid else 0.0
    result, app_ms = wrk_with_cpu(bench.wrk(server, bench.duration), server.pid)
    bouncer_ms = None
    if bouncer_pid:
        bouncer_ms = 1000 * (proc_cpu(bouncer_pid) - bouncer0) / max(result["requests"], 1)
    return result, app_ms, bouncer_ms


def timed_rounds(
    bench: Bench, servers: Servers, bouncer_pid: int | None
) -> dict[str, list[PoolerRun]]:
    """plain, engine, plain, engine, ..., plain: every engine run has a plain run each side."""
    runs: dict[str, list[PoolerRun]] = {k: [] for k in servers}
    order = round_order(list(servers), bench.rounds)
    quiet = QuietWaiter(bench.quiet_below, bench.quiet_budget)
    for i, (r, key) in enumerate(order, 1):
        server = servers[key]
        idle = quiet.wait()
        run_wrk(bench.wrk(server, bench.warmup))
        result, app_ms, bouncer_ms = measure(bench, server, bouncer_pid)
        runs[key].append(
            {
                **result,
                "app_cpu_ms_per_request": app_ms,
                "bouncer_cpu_ms_per_request": bouncer_ms,
                "round": r,
                "busy_before": idle,
            }
        )
        log(
            f"run {i}/{len(order)} round {r} {key:7s} {result['rps']:8.1f} req/s  "
            f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms  "
            f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms  "
            f"app CPU {app_ms:.2f} ms/req  "
            f"errors {result['errors_total']}  (others before: {idle:.0%})"
        )
    log(f"waited {quiet.waited:.0f} s in all for other load to calm down")
    return runs


class TogetherRound(TypedDict):
    round: int
    plain_rps: float
    engine_rps: float
    ratio: float
    plain_cpu_ms: float
    engine_cpu_ms: float
    cpu_ratio: float
    plain_loop_ms: float
    engine_loop_ms: float
    errors: int


def together_rounds(bench: Bench, servers: Servers) -> list[TogetherRound]:
    """Both servers loaded in the same windows, each by its own wrk (``--together``)."""
    plain, engine = servers["plain"], servers["engine"]
    half = dataclasses.replace(bench, connections=max(bench.connections // 2, 1), threads=1)
    rounds: list[TogetherRound] = []
    with ThreadPoolExecutor(2) as pool:
        for r in range(1, bench.rounds + 1):
            list(pool.map(run_wrk, [half.wrk(s, bench.warmup) for s in (plain, engine)]))
            before = [proc_cpu(s.pid) for s in (plain, engine)]
            loop_before = [main_thread_cpu(s.pid) for s in (plain, engine)]
            p, e = pool.map(run_wrk, [half.wrk(s, bench.duration) for s in (plain, engine)])
            cpu = [
                1000 * (proc_cpu(s.pid) - b) / max(res["requests"], 1)
                for s, b, res in zip((plain, engine), before, (p, e), strict=True)
            ]
            loop = [  # the event loop's thread; the rest is the threads of sync work
                1000 * (main_thread_cpu(s.pid) - b) / max(res["requests"], 1)
                for s, b, res in zip((plain, engine), loop_before, (p, e), strict=True)
            ]
            rounds.append(
                {
                    "round": r,
                    "plain_rps": p["rps"],
                    "engine_rps": e["rps"],
                    "ratio": e["rps"] / p["rps"],
                    "plain_cpu_ms": cpu[0],
                    "engine_cpu_ms": cpu[1],
                    "cpu_ratio": cpu[1] / cpu[0],
                    "plain_loop_ms": loop[0],
                    "engine_loop_ms": loop[1],
                    "errors": p["errors_total"] + e["errors_total"],
                }
            )
            log(
                f"window {r}/{bench.rounds}: plain {p['rps']:7.1f} req/s, engine "
                f"{e['rps']:7.1f} req/s (ratio {e['rps'] / p['rps']:.3f}); CPU ms/req "
                f"{cpu[0]:.2f} / {cpu[1]:.2f}"
            )
    return rounds


def report_together(meta: Meta, rounds: list[TogetherRound]) -> str:
    ratios = [r["ratio"] for r in rounds]
    cpu = [r["cpu_ratio"] for r in rounds]
    lines = [
        *report_head(meta),
        f"Both servers loaded at once, each by its own wrk (`-t1 -c{meta['connections'] // 2}`"
        f"), {meta['rounds']} windows of {meta['duration']} s (after {meta['warmup']} s of "
        f"warm-up each). Pool `{meta['pool']}`, PgBouncer {meta['pgbouncer']} (transaction "
        f"mode, `default_pool_size = {meta['bouncer_pool']}`). Versions: {meta['versions']}.",
        "",
        "| window | plain req/s | engine req/s | ratio | plain CPU ms/req (loop thread) | "
        "engine CPU ms/req (loop thread) | CPU ratio | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['round']} | {r['plain_rps']:.0f} | {r['engine_rps']:.0f} | {r['ratio']:.3f} | "
        f"{r['plain_cpu_ms']:.2f} ({r['plain_loop_ms']:.2f}) | {r['engine_cpu_ms']:.2f} "
        f"({r['engine_loop_ms']:.2f}) | {r['cpu_ratio']:.3f} | {r['errors']} |"
        for r in rounds
    ]
    loop = [r["engine_loop_ms"] / r["plain_loop_ms"] for r in rounds if r["plain_loop_ms"]]
    rest = [
        (r["engine_cpu_ms"] - r["engine_loop_ms"]) / (r["plain_cpu_ms"] - r["plain_loop_ms"])
        for r in rounds
        if r["plain_cpu_ms"] > r["plain_loop_ms"]
    ]
    lines += [
        "",
        f"Median ratio **{statistics.median(ratios):.3f}** ({min(ratios):.3f}-"
        f"{max(ratios):.3f}); median CPU ratio {statistics.median(cpu):.3f}: the event "
        f"loop's thread {statistics.median(loop or [0.0]):.3f}, the threads of sync work "
        f"(ORM, psycopg) {statistics.median(rest or [0.0]):.3f}.",
    ]
    return "\n".join(lines) + "\n"


class Summary(PairedSummary):
    app_cpu_ms: float
    cpu_ratio_median: float
    bouncer_cpu_ms: float | None


def summarise(runs: dict[str, list[PoolerRun]]) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for key, results in runs.items():
        cpu_ratios = paired(runs, key, lambda r: r["app_cpu_ms_per_request"])
        bouncer = [ms for r in results if (ms := r["bouncer_cpu_ms_per_request"]) is not None]
        out[key] = {
            **paired_summary(runs, key),
            "app_cpu_ms": statistics.median(r["app_cpu_ms_per_request"] for r in results),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "bouncer_cpu_ms": statistics.median(bouncer) if bouncer else None,
        }
    return out


class Meta(RunMeta, LoadMeta):
    pgbouncer: str
    bouncer_pool: str
    versions: str


def report(meta: Meta, variants: list[Variant], summary: dict[str, Summary]) -> str:
    labels = {v.key: v.label for v in variants}
    lines = [
        *report_head(meta),
        f"{describe_load(meta)}, plain Django before each engine run and once more at the "
        "end. Both variants: "
        f"`OPTIONS['pool'] = {meta['pool']}` to PgBouncer {meta['pgbouncer']} "
        f"(transaction mode, `default_pool_size = {meta['bouncer_pool']}` server connections "
        f"per database). Versions: {meta['versions']}.",
        "",
        "| variant | req/s (median) | ratio to plain (median; min-max) | p50 ms | p99 ms "
        "| uvicorn CPU ms / request | CPU ratio to plain (median) | PgBouncer CPU ms / request "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        bouncer = "-" if s["bouncer_cpu_ms"] is None else f"{s['bouncer_cpu_ms']:.3f}"
        lines.append(
            f"| {labels[key]} | {s['rps_median']:.0f} | {s['ratio_median']:.3f} "
            f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['p50_ms']:.0f} | "
            f"{s['p99_ms']:.0f} | {s['app_cpu_ms']:.2f} | {s['cpu_ratio_median']:.3f} | "
            f"{bouncer} | {s['errors']} |"
        )
    lines += ["", "Per run, in round order: req/s (paired req/s ratio):", ""]
    for key, s in summary.items():
        lines.append(f"- {labels[key]}: {s['rps_runs']} ({s['ratios']})")
    return "\n".join(lines) + "\n"


def bouncer_pid(port: str) -> int | None:
    """The pid of the PgBouncer listening on ``port`` (for its CPU time), if it can be found."""
    inodes = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == int(port):
                inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def pgbouncer_version() -> str:
    path = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "(version unknown)"
    return out.splitlines()[0].split()[-1] if out else "(version unknown)"


def parse_args(argv: list[str]) -> Bench:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    Load.add_arguments(p, duration=10, rounds=5)
    add_quiet_arguments(p)
    p.add_argument(
        "--together", action="store_true",
        help="Load both servers at once, each with its own wrk, instead of alternating.",
    )  # fmt: skip
    p.add_argument(
        "--against", choices=AGAINST, default="engine",
        help="The second server: the engine over 50 tenants (default), over one, plain "
        "Django again (the method's own bias), or a step between them (AGAINST).",
    )  # fmt: skip
    ns = p.parse_args(argv)
    return Bench(
        ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads, ns.quiet_below,
        ns.quiet_budget, ns.together, ns.against,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    bench = parse_args(argv)
    if not preflight("bench/run_pooler.sh", "OMNITENANT_PGBOUNCER_TX_PORT"):
        return 2
    port = os.environ["OMNITENANT_PGBOUNCER_TX_PORT"]
    run = Run("pooler")
    seed_ours()  # directly on the server, not through PgBouncer
    variants = build_variants(port, bench.against)
    pid = bouncer_pid(port)
    with Servers() as servers:
        for v in variants:
            servers.start(v, "plain" if v.key == "pooler-plain" else "engine")
        for server in servers.values():
            server.verify()  # every host answers with its own marker
        if bench.together:
            together = together_rounds(bench, servers)
        else:
            runs = timed_rounds(bench, servers, pid)
        servers.check()
    meta: Meta = {
        **run.meta(argv, "wrk, uvicorn, PgBouncer and PostgreSQL"),
        **bench.meta(),
        "pgbouncer": pgbouncer_version(),
        "bouncer_pool": os.environ.get("OMNITENANT_PGBOUNCER_POOL_SIZE", "4"),
        "versions": json.dumps(versions(sys.executable)),
    }
    if bench.together:
        run.write(report_together(meta, together), {"meta": meta, "windows": together})
        return 0
    by_key = summarise(runs)
    summary = {v.key: by_key["plain" if v.key == "pooler-plain" else "engine"] for v in variants}
    run.write(report(meta, variants, summary), {"meta": meta, "summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
