"""HTTP benchmark: the schema engine against plain Django (and django-tenants) under wrk.

Normally started by ``bench/run_http.sh``, which provides wrk and a PostgreSQL server. Run
directly with a server already up (OMNITENANT_PG_HOST/PORT exported, pg_stat_statements
preloaded for the SET counts)::

    .venv/bin/python -m bench.bench_http [--duration 15] [--rounds 5] [--no-django-tenants]

Every variant serves the same async view (``Marker.objects.aget()``) under uvicorn with one
worker and the same pool. wrk drives one variant at a time (64 connections, 2 threads), the
tenant variants with the Host rotating over 50 tenants per request. Rounds alternate plain
Django with the others; a variant's ratio in a round is its req/s over the mean of the plain
runs just before and after it. ``SET search_path`` statements are counted with
pg_stat_statements (which lists a piggybacked ``SET ...; SELECT ...`` as two statements,
``bench/pgstats.py``); after the runs, py-spy samples the servers (``bench/pyspy.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from bench.harness import (
    BENCH,
    DB_PLAIN,
    DB_TENANCY,
    OUT,
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
    log,
    machine_cpu,
    paired,
    paired_summary,
    preflight,
    proc_cpu,
    report_head,
    round_order,
    run_logged,
    run_wrk,
    seed_ours,
    versions,
)
from bench.pgstats import LogCounts, Monitor, classify_log
from bench.pyspy import ProfileShares, profile

if TYPE_CHECKING:
    from bench.bench_overhead import Overhead

DT_DIR = BENCH / "django_tenants_project"
DT_VENV = BENCH / ".venvs" / "django-tenants"
DB_DT = os.environ.get("OMNITENANT_BENCH_DT_DB", "omnitenant_bench_dt")


# --------------------------------------------------------------------------------------------
# CPU accounting: the server process and its PostgreSQL backends, wrk, and everyone else
# --------------------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuUse(TypedDict):
    app: float
    pg: float
    wrk: float
    busy: float
    steal: float
    wall: float
    foreign: float


@dataclass
class CpuSnapshot:
    app: float
    pg: float
    wrk: float
    busy: float
    steal: float
    wall: float

    @classmethod
    def take(cls, app_pid: int, pg_pids: list[int]) -> CpuSnapshot:
        busy, steal = machine_cpu()
        return cls(
            proc_cpu(app_pid), sum(map(proc_cpu, pg_pids)), children_cpu(), busy, steal,
            time.monotonic(),
        )  # fmt: skip

    def since(self, before: CpuSnapshot) -> CpuUse:
        """CPU seconds used between two snapshots; ``foreign`` is everyone else's."""
        app, pg, wrk = self.app - before.app, self.pg - before.pg, self.wrk - before.wrk
        busy = self.busy - before.busy
        return {
            "app": app,
            "pg": pg,
            "wrk": wrk,
            "busy": busy,
            "steal": self.steal - before.steal,
            "wall": self.wall - before.wall,
            "foreign": max(0.0, busy - app - pg - wrk),
        }


# --------------------------------------------------------------------------------------------
# Variants: the django-tenants virtualenv, then ours
# --------------------------------------------------------------------------------------------


def ensure_dt_venv() -> str:
    """bench/.venvs/django-tenants with django-tenants, pinned to our Django/uvicorn/psycopg."""
    py = DT_VENV / "bin" / "python"
    pins = [
        f"Django=={metadata.version('django')}",
        f"uvicorn=={metadata.version('uvicorn')}",
        f"psycopg[binary,pool]=={metadata.version('psycopg')}",
    ]
    want = " ".join(["django-tenants", *pins])
    stamp = DT_VENV / ".bench-stamp"
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return str(py)
    log(f"installing {want} into {DT_VENV.relative_to(ROOT)}")
    if not py.exists():
        run_logged([sys.executable, "-m", "venv", str(DT_VENV)], cwd=ROOT, env={}, name="dt-venv")
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        run_logged(
            [str(py), "-m", "pip", "install", "-q", "django-tenants", *pins],
            cwd=ROOT,
            env=env,
            name="dt-pip",
        )
    except RuntimeError:
        log("pinned install failed; trying django-tenants with the versions it wants")
        run_logged(
            [str(py), "-m", "pip", "install", "-q", "django-tenants", "uvicorn", "psycopg[pool]"],
            cwd=ROOT,
            env=env,
            name="dt-pip",
        )
    stamp.write_text(want)
    return str(py)


def build_variants(dt_python: str | None) -> list[Variant]:
    py = sys.executable
    tenancy = {"DJANGO_SETTINGS_MODULE": "bench.tenant_settings"}
    variants = [
        Variant(
            "plain", "plain Django", py, "bench.asgi:application", ROOT, DB_PLAIN,
            ["localhost"], {"DJANGO_SETTINGS_MODULE": "bench.plain_settings"},
        ),
        Variant(
            "omni_pb", "omnitenant, PIGGYBACK_SEARCH_PATH=True", py, "bench.asgi:application",
            ROOT, DB_TENANCY, TENANT_HOSTS, {**tenancy, "OMNITENANT_BENCH_PIGGYBACK": "1"},
        ),
        Variant(
            "omni_nopb", "omnitenant, PIGGYBACK_SEARCH_PATH=False", py,
            "bench.asgi:application", ROOT, DB_TENANCY, TENANT_HOSTS,
            {**tenancy, "OMNITENANT_BENCH_PIGGYBACK": "0"},
        ),
    ]  # fmt: skip
    if dt_python:
        variants.append(
            Variant(
                "django_tenants", "django-tenants (sync TenantMainMiddleware)", dt_python,
                "dtproj.asgi:application", DT_DIR, DB_DT, TENANT_HOSTS,
                {"DJANGO_SETTINGS_MODULE": "dtproj.settings"},
            )
        )  # fmt: skip
    return variants


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass
class Args(Load):
    audit: int
    django_tenants: bool
    own_cluster_log: str | None
    quiet_below: float
    quiet_budget: float
    profile: int
    overhead: bool


class Measured(WrkResult):
    cpu: CpuUse
    pg: dict[str, int]
    backends: int
    cpu_ms_per_request: float


class HttpRun(Measured, RoundRun):
    busy_before: float


class AuditRun(Measured):
    log: LogCounts | None  # client messages: on the bench's own cluster only
    key: str
    hosts: str
    served: int


def measure(
    args: Args, mon: Monitor, server: Server, seconds: int, hosts: list[str] | None = None
) -> Measured:
    db = server.variant.db
    pg_pids = mon.backend_pids(db, f"bench-{server.variant.key}")
    mon.reset(db)
    before = CpuSnapshot.take(server.pid, pg_pids)
    result = run_wrk(args.wrk(server, seconds, hosts))
    cpu = CpuSnapshot.take(server.pid, pg_pids).since(before)
    pg = mon.counts(db)
    served = pg.get("marker_select") or result["requests"]
    return {
        **result,
        "cpu": cpu,
        "pg": pg,
        "backends": len(pg_pids),
        "cpu_ms_per_request": 1000 * (cpu["app"] + cpu["pg"]) / served,
    }


def timed_rounds(args: Args, mon: Monitor, servers: Servers) -> dict[str, list[HttpRun]]:
    """plain, then the others (order rotated each round); one more plain run at the end."""
    runs: dict[str, list[HttpRun]] = {k: [] for k in servers}
    order = round_order(list(servers), args.rounds)
    quiet = QuietWaiter(args.quiet_below, args.quiet_budget)
    for i, (r, key) in enumerate(order, 1):
        server = servers[key]
        idle_share = quiet.wait()
        run_wrk(args.wrk(server, args.warmup))
        result: HttpRun = {
            **measure(args, mon, server, args.duration),
            "round": r,
            "busy_before": idle_share,
        }
        runs[key].append(result)
        log(
            f"run {i}/{len(order)} round {r} {key:15s} {result['rps']:8.1f} req/s  "
            f"p50 {result['latency_us']['p50'] / 1000:6.1f} ms  "
            f"p99 {result['latency_us']['p99'] / 1000:6.1f} ms  "
            f"SET {result['pg'].get('set_search_path', '-')}  errors {result['errors_total']}  "
            f"CPU {result['cpu_ms_per_request']:.2f} ms/req  "
            f"others {foreign_share(result):.0%} (before: {idle_share:.0%})  "
            f"steal {result['cpu']['steal']:.1f} s"
        )
    log(f"waited {quiet.waited:.0f} s in all for other load to calm down")
    return runs


def foreign_share(result: Measured) -> float:
    """Share of the machine's CPU capacity used by processes outside the benchmark."""
    cpu = result["cpu"]
    return cpu["foreign"] / (cpu["wall"] * (os.cpu_count() or 1))


class Summary(PairedSummary):
    requests_wrk: int
    requests_served: int
    sets_total: int
    sets_per_request: float | None
    statements_per_request: float | None
    domain_lookups: int
    cpu_ms_per_request: float
    cpu_ratio_median: float
    cpu_ratios: list[float]
    foreign_share: list[float]
    backends: int


def summarise(runs: dict[str, list[HttpRun]]) -> dict[str, Summary]:
    summary: dict[str, Summary] = {}
    for key, results in runs.items():
        cpu_ratios = paired(runs, key, lambda r: r["cpu_ms_per_request"])
        served = sum(r["pg"].get("marker_select", 0) for r in results)
        sets = sum(r["pg"].get("set_search_path", 0) for r in results)
        statements = sum(r["pg"].get("statements", 0) for r in results)
        summary[key] = {
            **paired_summary(runs, key),
            "requests_wrk": sum(r["requests"] for r in results),
            "requests_served": served,
            "sets_total": sets,
            "sets_per_request": sets / served if served else None,
            "statements_per_request": statements / served if served else None,
            "domain_lookups": sum(r["pg"].get("domain_select", 0) for r in results),
            "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in results),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratios": [round(x, 3) for x in cpu_ratios],
            "foreign_share": [round(foreign_share(r), 2) for r in results],
            "backends": max(r["backends"] for r in results),
        }
    return summary


def audit(args: Args, mon: Monitor, servers: Servers) -> list[AuditRun]:
    """Short runs that count SETs (and, on our own cluster, client messages) per request."""
    configs: list[tuple[str, list[str] | None]] = [(k, None) for k in servers]
    configs += [(k, ["b00.localhost"]) for k in ("omni_pb", "omni_nopb") if k in servers]
    results = []
    for key, hosts in configs:
        server = servers[key]
        run_wrk(args.wrk(server, 2, hosts))
        offset = None
        log_path = Path(args.own_cluster_log) if args.own_cluster_log else None
        with mon.statement_log() if log_path else nullcontext():
            if log_path:
                offset = log_path.stat().st_size
            measured = measure(args, mon, server, args.audit, hosts)
        result: AuditRun = {
            **measured,
            "key": key,
            "hosts": "1 tenant (b00)" if hosts else f"{len(server.variant.hosts)} host(s)",
            "served": measured["pg"].get("marker_select", 0),
            "log": None,
        }
        if log_path and offset is not None:
            with log_path.open(errors="replace") as fh:
                fh.seek(offset)
                text = fh.read()
            suffix = "-1tenant" if hosts else ""
            (OUT / f"audit-{key}{suffix}.pglog").write_text(text)
            result["log"] = classify_log(text.splitlines())
        results.append(result)
        log(f"audit {key:15s} {result['hosts']:15s} pg={result['pg']} log={result['log']}")
    return results


def measure_overhead() -> Overhead:
    """bench.bench_overhead in a subprocess (its own settings): CPU µs of the tenancy layer."""
    log("measuring the tenancy layer's CPU cost in-process (bench.bench_overhead)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.overhead_settings"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_overhead"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: Overhead = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


class Meta(RunMeta, LoadMeta):
    wrk: str
    versions: str
    django_tenants_problem: str


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(meta: Meta, variants: list[Variant], summary: dict[str, Summary],
           audits: list[AuditRun], profiles: dict[str, ProfileShares],
           overhead: Overhead | None) -> str:  # fmt: skip
    labels = {v.key: v.label for v in variants}
    lines = [
        *report_head(meta),
        f"wrk: `{meta['wrk']}`, {meta['rounds']} rounds of {meta['duration']} s per variant "
        f"(after {meta['warmup']} s warm-up each), plain Django before each round and once more "
        "at the end. Pool, identical for every variant: "
        f"`OPTIONS['pool'] = {meta['pool']}`. Versions: {meta['versions']}.",
        "",
        "| variant | req/s (median) | req/s ratio to plain (median; min-max) | p50 ms "
        "| p99 ms | server CPU ms / request (app + PostgreSQL) | CPU ratio to plain "
        "| SET search_path / request | SQL statements / request | tenant lookups in SQL "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        lines.append(
            f"| {labels[key]} | {s['rps_median']:.0f} | {s['ratio_median']:.3f} "
            f"({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | {s['p50_ms']:.0f} | "
            f"{s['p99_ms']:.0f} | {s['cpu_ms_per_request']:.2f} | {s['cpu_ratio_median']:.3f} | "
            f"{fmt(s['sets_per_request'], 3)} ({s['sets_total']} in all) | "
            f"{fmt(s['statements_per_request'])} | {s['domain_lookups']} | {s['errors']} |"
        )
    lines += [
        "",
        "Per run, in round order: req/s (paired req/s ratio; paired CPU-per-request ratio; "
        "share of the machine's CPU used by processes outside the bench):",
        "",
    ]
    for key, s in summary.items():
        lines.append(
            f"- {labels[key]}: {s['rps_runs']} ({s['ratios']}; {s['cpu_ratios']}; "
            f"{s['foreign_share']})"
        )
    lines += [
        "",
        "Audit runs (short; with `log_statement = 'all'` on the bench's own cluster, so slower):"
        if any(a["log"] for a in audits)
        else "Audit runs (short; client messages are counted only on the bench's own cluster):",
        "",
        "| variant | hosts | requests | SET / request | SET messages alone / request "
        "| SET sent in front of a query / request | client messages / request |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in audits:
        served = a["served"] or 1
        lg = a["log"]
        sets = a["pg"].get("set_search_path")
        lines.append(
            f"| {labels[a['key']]} | {a['hosts']} | {a['served']} | "
            f"{fmt(sets / served if sets is not None else None, 3)} | "
            f"{fmt(lg['set_alone'] / served if lg else None, 3)} | "
            f"{fmt(lg['set_with_query'] / served if lg else None, 3)} | "
            f"{fmt(lg['messages'] / served if lg else None, 3)} |"
        )
    if profiles:
        lines += [
            "",
            "py-spy samples of the uvicorn process's threads under the same load (wall clock, "
            "every thread): what they wait on, or which package runs (standard library time "
            "charged to its caller); last, omnitenant_async's own share of the running samples:",
            "",
        ]
        for key, prof in profiles.items():
            parts = ", ".join(f"{k} {v:.1%}" for k, v in prof["shares"].items() if v >= 0.002)
            lines.append(
                f"- {labels[key]} ({prof['samples']} samples): {parts}; "
                f"omnitenant_async in running samples: {prof['omnitenant_in_running']:.1%}"
            )
    if overhead:
        lines += [
            "",
            "In-process CPU cost (`bench/bench_overhead.py`, median of 5 interleaved rounds of "
            f"{overhead['n']}): TenantMiddleware adds {overhead['middleware_us']:.1f} µs per "
            "request (tenant cached). One `Marker.objects.get()` on a kept connection:",
            "",
            "| case | client CPU µs | PostgreSQL CPU µs | wall µs |",
            "|---|---|---|---|",
        ]
        for case, q in overhead["query"].items():
            lines.append(
                f"| {case} | {q['client_cpu_us']:.0f} | {q['pg_cpu_us']:.0f} | {q['wall_us']:.0f} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    Load.add_arguments(p, duration=10, rounds=6)
    p.add_argument("--audit", type=int, default=4, help="seconds per audit run (0: none)")
    p.add_argument("--no-django-tenants", dest="django_tenants", action="store_false")
    p.add_argument(
        "--no-overhead", dest="overhead", action="store_false",
        help="skip the in-process CPU measurement of the tenancy layer (bench.bench_overhead)",
    )  # fmt: skip
    p.add_argument(
        "--profile", type=int, default=12,
        help="seconds of py-spy sampling per variant after the runs (0: none)",
    )  # fmt: skip
    add_quiet_arguments(p)
    ns = p.parse_args(argv)
    own_log = os.environ.get("OMNITENANT_BENCH_PG_LOG") or None
    return Args(
        ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads, ns.audit,
        ns.django_tenants, own_log, ns.quiet_below, ns.quiet_budget, ns.profile, ns.overhead,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not preflight("bench/run_http.sh"):
        return 2
    run = Run("http")
    seed_ours()
    dt_python: str | None = None
    dt_problem = ""
    if args.django_tenants:
        try:
            dt_python = ensure_dt_venv()
            run_logged([dt_python, "seed_dt.py"], cwd=DT_DIR, env={}, name="seed-dt")
        except (RuntimeError, OSError) as err:
            dt_problem = str(err)
            dt_python = None
            log(f"django-tenants left out: {err}")
    variants = build_variants(dt_python)
    mon = Monitor()
    with Servers() as servers:
        for v in variants:
            try:
                servers.start(v).verify()
            except RuntimeError as err:
                if v.key != "django_tenants":
                    raise
                dt_problem = str(err)
                log(f"django-tenants left out: {err}")
                if (failed := servers.pop(v.key, None)) is not None:
                    failed.stop()
        log(f"servers up and verified: {', '.join(servers)}; about "
            f"{(args.rounds * len(servers) + 1) * (args.duration + args.warmup + 1) / 60:.1f} "
            "min of wrk runs")  # fmt: skip
        runs = timed_rounds(args, mon, servers)
        audits = audit(args, mon, servers) if args.audit else []
        keys = ("plain", "omni_pb", "omni_nopb")
        profiles = profile(servers, keys, args.profile, args.wrk) if args.profile else {}
        servers.check()  # correctness once more, after the load
        wrk_line = " ".join(args.wrk(servers["omni_pb"], args.duration)[:6] + ["..."])
    overhead = measure_overhead() if args.overhead else None
    summary = summarise(runs)
    vers = {"ours": versions(sys.executable)}
    if dt_python:
        vers["django-tenants venv"] = versions(dt_python)
    meta: Meta = {
        **run.meta(argv, "load generator, server and PostgreSQL"),
        **args.meta(),
        "wrk": wrk_line,
        "versions": json.dumps(vers),
        "django_tenants_problem": dt_problem,
    }
    text = report(meta, variants, summary, audits, profiles, overhead)
    run.write(
        text,
        {"meta": meta, "summary": summary, "runs": runs, "audits": audits, "profiles": profiles},
    )
    if dt_problem:
        log(f"django-tenants problem: {dt_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
