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
pg_stat_statements (which lists a piggybacked ``SET ...; SELECT ...`` as two statements).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from bench.common import pool_options

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LUA = BENCH / "rotate_hosts.lua"
DT_DIR = BENCH / "django_tenants_project"
DT_VENV = BENCH / ".venvs" / "django-tenants"
TOOLS_VENV = BENCH / ".venvs" / "tools"
N_TENANTS = 50
TENANT_HOSTS = [f"b{i:02d}.localhost" for i in range(N_TENANTS)]
DB_TENANCY = os.environ.get("OMNITENANT_BENCH_DB", "omnitenant_bench")
DB_PLAIN = os.environ.get("OMNITENANT_BENCH_PLAIN_DB", "omnitenant_bench_plain")
DB_DT = os.environ.get("OMNITENANT_BENCH_DT_DB", "omnitenant_bench_dt")
UVICORN_FLAGS = ["--workers", "1", "--log-level", "warning", "--no-access-log"]
UVICORN_FLAGS += ["--http", "h11", "--loop", "asyncio"]  # same stack in both virtualenvs


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def pg_params(dbname: str = "postgres") -> dict[str, Any]:
    params = {
        "host": os.environ.get("OMNITENANT_PG_HOST", "127.0.0.1"),
        "port": os.environ["OMNITENANT_PG_PORT"],
        "user": os.environ.get("OMNITENANT_PGUSER", "postgres"),
        "dbname": dbname,
    }
    if os.environ.get("OMNITENANT_PGPASSWORD"):
        params["password"] = os.environ["OMNITENANT_PGPASSWORD"]
    return params


class Monitor:
    """One connection to the ``postgres`` database reading pg_stat_statements for a database."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(**pg_params(), autocommit=True)
        self.pgss = self._enable_pgss()

    def _enable_pgss(self) -> bool:
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        except psycopg.Error as err:
            log(f"pg_stat_statements unavailable ({err}); SET counts will be missing")
            return False
        return True

    def reset(self, db: str) -> None:
        if self.pgss:  # this database's entries only: the server may be shared
            self.conn.execute(
                "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                "WHERE datname = %s), 0)",
                [db],
            )

    def counts(self, db: str) -> dict[str, int]:
        """Statement calls in ``db`` since the last reset, by kind."""
        if not self.pgss:
            return {}
        rows = self.conn.execute(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = %s",
            [db],
        ).fetchall()
        out = {"set_search_path": 0, "marker_select": 0, "domain_select": 0, "statements": 0}
        for query, calls in rows:
            q = query.lower().lstrip()
            out["statements"] += calls
            if sets_path(q):
                out["set_search_path"] += calls
            elif q.startswith("select") and "_marker" in q:
                out["marker_select"] += calls
            elif q.startswith("select") and "_domain" in q:
                out["domain_select"] += calls
        return out

    def backend_pids(self, db: str, app_name: str) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [db, app_name],
        ).fetchall()
        return [int(r[0]) for r in rows]

    @contextmanager
    def statement_log(self) -> Iterator[None]:
        """``log_statement = 'all'`` cluster-wide for a while (own throwaway cluster only)."""
        self.conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        self.conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        try:
            yield
        finally:
            self.conn.execute("ALTER SYSTEM RESET log_statement")
            self.conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# CPU accounting: the machine is shared, so wall-clock throughput is noisy; CPU time per request
# of the server process and its PostgreSQL backends is much less so.
# --------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, fh.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, steal / CLK_TCK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds used between two snapshots; ``foreign`` is everyone else's."""
        d = {
            "app": self.app - before.app,
            "pg": self.pg - before.pg,
            "wrk": self.wrk - before.wrk,
            "busy": self.busy - before.busy,
            "steal": self.steal - before.steal,
            "wall": self.wall - before.wall,
        }
        d["foreign"] = max(0.0, d["busy"] - d["app"] - d["pg"] - d["wrk"])
        return d


# --------------------------------------------------------------------------------------------
# Variants and servers
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    key: str
    label: str
    python: str
    app: str
    cwd: Path
    db: str
    hosts: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def expected_marker(self, host: str) -> str:
        return "plain" if self.key == "plain" else host.split(".")[0]


def lua_args(hosts: list[str]) -> list[str]:
    """Arguments of rotate_hosts.lua: a fixed Host, or rotation over b00.localhost...."""
    if len(hosts) == 1:
        return ["fixed", hosts[0]]
    return [str(len(hosts)), "b"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """uvicorn with one worker, its output in bench/out/<key>.log; stopped by pid."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.port = free_port()
        self.log_path = OUT / f"uvicorn-{variant.key}.log"
        cmd = [variant.python, "-m", "uvicorn", variant.app, "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), *UVICORN_FLAGS]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **variant.env}
        env["OMNITENANT_BENCH_APP_NAME"] = f"bench-{variant.key}"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=variant.cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{variant.key}: uvicorn exited:\n{self.log_path.read_text()}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{variant.key}: uvicorn did not listen within 30 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/item/"

    def get(self, host: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/item/", headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def verify(self) -> None:
        """Every host answers 200 with its own marker; an unknown tenant host gets 404."""
        for host in self.variant.hosts:
            status, body = self.get(host)
            want = self.variant.expected_marker(host)
            if status != 200 or json.loads(body).get("marker") != want:
                raise RuntimeError(f"{self.variant.key}: {host} -> {status} {body[:200]!r}")
        if len(self.variant.hosts) > 1:
            status, _ = self.get("unknown.localhost")
            if status != 404:
                raise RuntimeError(f"{self.variant.key}: unknown host -> {status}, not 404")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------------------------
# Set-up: databases, the django-tenants virtualenv
# --------------------------------------------------------------------------------------------


def run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], name: str) -> None:
    path = OUT / f"{name}.log"
    with path.open("w") as out:
        rc = subprocess.call(cmd, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=out)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{path.read_text()[-3000:]}")


def seed_ours() -> None:
    py = sys.executable
    for kind, settings in (("tenancy", "bench.tenant_settings"), ("plain", "bench.plain_settings")):
        t0 = time.monotonic()
        run_logged(
            [py, "-m", "bench.seed", kind],
            cwd=ROOT,
            env={"DJANGO_SETTINGS_MODULE": settings},
            name=f"seed-{kind}",
        )
        log(f"seeded {kind} database in {time.monotonic() - t0:.1f} s")


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


def versions(python: str) -> dict[str, str]:
    code = (
        "import json, sys; from importlib import metadata as m; "
        "names = ['django', 'django-tenants', 'uvicorn', 'psycopg', 'psycopg-pool', 'asgiref']; "
        "v = {}\nfor n in names:\n  try: v[n] = m.version(n)\n  except Exception: pass\n"
        "v['python'] = sys.version.split()[0]; print(json.dumps(v))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


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
# wrk
# --------------------------------------------------------------------------------------------


@dataclass
class Args:
    duration: int
    warmup: int
    rounds: int
    connections: int
    threads: int
    audit: int
    django_tenants: bool
    own_cluster_log: str | None
    quiet_below: float
    quiet_budget: float
    profile: int
    overhead: bool


def wrk_cmd(args: Args, server: Server, seconds: int, hosts: list[str] | None = None) -> list[str]:
    return [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), server.url, "--", *lua_args(hosts or server.variant.hosts),
    ]  # fmt: skip


def run_wrk(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors_total"] = sum(result["errors"].values())
            return result
    raise RuntimeError(f"no WRK_JSON line in wrk output:\n{out}")


def measure(
    args: Args, mon: Monitor, server: Server, seconds: int, hosts: list[str] | None = None
) -> dict[str, Any]:
    db = server.variant.db
    pg_pids = mon.backend_pids(db, f"bench-{server.variant.key}")
    mon.reset(db)
    before = CpuSnapshot.take(server.proc.pid, pg_pids)
    result = run_wrk(wrk_cmd(args, server, seconds, hosts))
    result["cpu"] = CpuSnapshot.take(server.proc.pid, pg_pids).since(before)
    result["pg"] = mon.counts(db)
    result["backends"] = len(pg_pids)
    served = result["pg"].get("marker_select") or result["requests"]
    result["cpu_ms_per_request"] = 1000 * (result["cpu"]["app"] + result["cpu"]["pg"]) / served
    return result


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPUs busy over ``seconds`` (our servers idle: other processes)."""
    before, t0 = machine_cpu()[0], time.monotonic()
    time.sleep(seconds)
    return (machine_cpu()[0] - before) / ((time.monotonic() - t0) * (os.cpu_count() or 1))


class QuietWaiter:
    """Waits for other load on the shared machine to calm down, within a total time budget."""

    def __init__(self, below: float, budget: float) -> None:
        self.below = below
        self.budget = budget
        self.waited = 0.0

    def wait(self) -> float:
        share = busy_share()
        while share > self.below and self.waited < self.budget:
            t0 = time.monotonic()
            share = busy_share()
            self.waited += time.monotonic() - t0
        return share


def timed_rounds(
    args: Args, mon: Monitor, servers: dict[str, Server]
) -> dict[str, list[dict[str, Any]]]:
    """plain, then the others (order rotated each round); one more plain run at the end."""
    others = [k for k in servers if k != "plain"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
    order: list[tuple[int, str]] = []
    for r in range(args.rounds):
        shift = r % len(others) if others else 0
        order += [(r, "plain")] + [(r, k) for k in others[shift:] + others[:shift]]
    order.append((args.rounds, "plain"))
    quiet = QuietWaiter(args.quiet_below, args.quiet_budget)
    for i, (r, key) in enumerate(order, 1):
        server = servers[key]
        idle_share = quiet.wait()
        run_wrk(wrk_cmd(args, server, args.warmup))
        result = measure(args, mon, server, args.duration)
        result["round"] = r
        result["busy_before"] = idle_share
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


def foreign_share(result: dict[str, Any]) -> float:
    """Share of the machine's CPU capacity used by processes outside the benchmark."""
    cpu = result["cpu"]
    return float(cpu["foreign"] / (cpu["wall"] * (os.cpu_count() or 1)))


def paired(runs: dict[str, list[dict[str, Any]]], key: str, value: str) -> list[float]:
    """A run's ``value`` over the mean of the plain runs around it (same round and the next).

    For plain itself: over its neighbours' mean (the noise floor).
    """
    plain = {r["round"]: r[value] for r in runs["plain"]}
    around = (-1, 1) if key == "plain" else (0, 1)
    return [
        r[value] / statistics.mean(plain[x] for x in (r["round"] + d for d in around) if x in plain)
        for r in runs[key]
    ]


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for key, results in runs.items():
        ratios = paired(runs, key, "rps")
        cpu_ratios = paired(runs, key, "cpu_ms_per_request")
        served = sum(r["pg"].get("marker_select", 0) for r in results)
        sets = sum(r["pg"].get("set_search_path", 0) for r in results)
        statements = sum(r["pg"].get("statements", 0) for r in results)
        lookups = sum(r["pg"].get("domain_select", 0) for r in results)
        summary[key] = {
            "rps_median": statistics.median(r["rps"] for r in results),
            "rps_runs": [round(r["rps"], 1) for r in results],
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(x, 3) for x in ratios],
            "p50_ms": statistics.median(r["latency_us"]["p50"] for r in results) / 1000,
            "p99_ms": statistics.median(r["latency_us"]["p99"] for r in results) / 1000,
            "requests_wrk": sum(r["requests"] for r in results),
            "requests_served": served,
            "sets_total": sets,
            "sets_per_request": sets / served if served else None,
            "statements_per_request": statements / served if served else None,
            "domain_lookups": lookups,
            "errors": sum(r["errors_total"] for r in results),
            "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in results),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratios": [round(x, 3) for x in cpu_ratios],
            "foreign_share": [round(foreign_share(r), 2) for r in results],
            "backends": max(r["backends"] for r in results),
        }
    return summary


def sets_path(statement: str) -> bool:
    """A lower-cased statement that sets the search_path: ``SET search_path`` (django-tenants)
    or ``SELECT set_config('search_path', ...)`` (our engine; ``$1`` once pg_stat_statements
    has normalised it)."""
    return statement.startswith(
        ("set search_path", "select set_config('search_path'", "select set_config($1")
    )


def classify_log(lines: list[str]) -> dict[str, int]:
    """Client messages in a PostgreSQL log with log_statement = 'all', by what they carry."""
    out = {"messages": 0, "set_alone": 0, "set_with_query": 0, "select_marker": 0, "domain": 0}
    for line in lines:
        _, sep, stmt = line.partition("LOG:  statement: ")
        if not sep:
            _, sep, stmt = line.partition("LOG:  execute <unnamed>: ")
        if not sep:
            continue
        low = stmt.lower()
        if "_marker" not in low and "_domain" not in low and "search_path" not in low:
            continue  # the driver's own statements
        out["messages"] += 1
        if sets_path(low):
            # Piggybacked: another statement follows in the same message.
            rest = low.partition(";")[2].strip()
            out["set_with_query" if rest else "set_alone"] += 1
        if "_marker" in low:
            out["select_marker"] += 1
        if "_domain" in low:
            out["domain"] += 1
    return out


def audit(args: Args, mon: Monitor, servers: dict[str, Server]) -> list[dict[str, Any]]:
    """Short runs that count SETs (and, on our own cluster, client messages) per request."""
    configs = [(k, None) for k in servers]
    configs += [(k, ["b00.localhost"]) for k in ("omni_pb", "omni_nopb") if k in servers]
    results = []
    for key, hosts in configs:
        server = servers[key]
        run_wrk(wrk_cmd(args, server, 2, hosts))
        offset = None
        log_path = Path(args.own_cluster_log) if args.own_cluster_log else None
        with mon.statement_log() if log_path else nullcontext():
            if log_path:
                offset = log_path.stat().st_size
            result = measure(args, mon, server, args.audit, hosts)
        if log_path and offset is not None:
            with log_path.open(errors="replace") as fh:
                fh.seek(offset)
                text = fh.read()
            suffix = "-1tenant" if hosts else ""
            (OUT / f"audit-{key}{suffix}.pglog").write_text(text)
            result["log"] = classify_log(text.splitlines())
        served = result["pg"].get("marker_select", 0)
        result.update(
            key=key,
            hosts="1 tenant (b00)" if hosts else f"{len(server.variant.hosts)} host(s)",
            served=served,
        )
        results.append(result)
        log(f"audit {key:15s} {result['hosts']:15s} pg={result['pg']} log={result.get('log')}")
    return results


# --------------------------------------------------------------------------------------------
# Profile: where the server's CPU goes (py-spy, sampling the live uvicorn process under load)
# --------------------------------------------------------------------------------------------

PACKAGES = {"omnitenant_async", "django", "asgiref", "psycopg", "psycopg_pool", "uvicorn", "h11"}


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


def profile_shares(raw: Path) -> dict[str, Any]:
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


def profile(args: Args, servers: dict[str, Server], seconds: int) -> dict[str, Any]:
    py_spy = ensure_py_spy()
    found: dict[str, Any] = {}
    for key in ("plain", "omni_pb", "omni_nopb"):
        server = servers[key]
        raw = OUT / f"profile-{key}.txt"
        wrk = subprocess.Popen(wrk_cmd(args, server, seconds + 2), stdout=subprocess.DEVNULL)
        try:
            time.sleep(1)
            subprocess.run(
                [py_spy, "record", "-p", str(server.proc.pid), "-d", str(seconds), "-r", "50",
                 "-f", "raw", "-o", str(raw)],
                check=True, capture_output=True,
            )  # fmt: skip
        finally:
            wrk.wait()
        found[key] = profile_shares(raw)
        log(f"profile {key}: {found[key]}")
    return found


def measure_overhead() -> dict[str, Any]:
    """bench.bench_overhead in a subprocess (its own settings): CPU µs of the tenancy layer."""
    log("measuring the tenancy layer's CPU cost in-process (bench.bench_overhead)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.overhead_settings"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_overhead"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(meta: dict[str, Any], variants: list[Variant], summary: dict[str, Any],
           audits: list[dict[str, Any]], profiles: dict[str, Any],
           overhead: dict[str, Any]) -> str:  # fmt: skip
    labels = {v.key: v.label for v in variants}
    lines = [
        f"Run {meta['started']}, {meta['elapsed_s']:.0f} s in all; {meta['machine']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
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
        if any(a.get("log") for a in audits)
        else "Audit runs (short; client messages are counted only on the bench's own cluster):",
        "",
        "| variant | hosts | requests | SET / request | SET messages alone / request "
        "| SET sent in front of a query / request | client messages / request |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in audits:
        served = a["served"] or 1
        lg = a.get("log")
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
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
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
    p.add_argument(
        "--quiet-below", type=float, default=0.25,
        help="before a run, wait while other processes use more than this share of the CPUs",
    )  # fmt: skip
    p.add_argument(
        "--quiet-budget", type=float, default=60, help="seconds of such waiting in all, at most"
    )
    ns = p.parse_args(argv)
    own_log = os.environ.get("OMNITENANT_BENCH_PG_LOG") or None
    return Args(
        ns.duration, ns.warmup, ns.rounds, ns.connections, ns.threads, ns.audit,
        ns.django_tenants, own_log, ns.quiet_below, ns.quiet_budget, ns.profile, ns.overhead,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not os.environ.get("OMNITENANT_PG_PORT"):
        log("OMNITENANT_PG_PORT is not set: run bench/run_http.sh, which starts PostgreSQL")
        return 2
    if shutil.which("wrk") is None:
        log("wrk is not installed: run bench/run_http.sh, or apt-get install wrk")
        return 2
    OUT.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
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
    servers: dict[str, Server] = {}
    try:
        for v in variants:
            try:
                servers[v.key] = Server(v)
                servers[v.key].verify()
            except RuntimeError as err:
                if v.key != "django_tenants":
                    raise
                dt_problem = str(err)
                log(f"django-tenants left out: {err}")
                servers.pop(v.key).stop()
        log(f"servers up and verified: {', '.join(servers)}; about "
            f"{(args.rounds * len(servers) + 1) * (args.duration + args.warmup + 1) / 60:.1f} "
            "min of wrk runs")  # fmt: skip
        runs = timed_rounds(args, mon, servers)
        audits = audit(args, mon, servers) if args.audit else []
        profiles = profile(args, servers, args.profile) if args.profile else {}
        for key, server in servers.items():  # correctness once more, after the load
            server.verify()
            if "Traceback" in server.log_path.read_text():
                raise RuntimeError(f"{key}: traceback in {server.log_path}")
    finally:
        for server in servers.values():
            server.stop()
    overhead = measure_overhead() if args.overhead else {}
    summary = summarise(runs)
    vers = {"ours": versions(sys.executable)}
    if dt_python:
        vers["django-tenants venv"] = versions(dt_python)
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - t0,
        "machine": f"{os.cpu_count()} CPUs, shared VM; load generator, server and PostgreSQL "
        "on the same machine",
        "command": os.environ.get("OMNITENANT_BENCH_COMMAND")
        or " ".join(["python -m bench.bench_http", *argv]),
        "wrk": " ".join(wrk_cmd(args, servers["omni_pb"], args.duration)[:6] + ["..."]),
        "rounds": args.rounds,
        "duration": args.duration,
        "warmup": args.warmup,
        "pool": json.dumps(pool_options()),
        "versions": json.dumps(vers),
        "django_tenants_problem": dt_problem,
    }
    text = report(meta, variants, summary, audits, profiles, overhead)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"http-{stamp}.md").write_text(text)
    (OUT / f"http-{stamp}.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "summary": summary,
                "runs": runs,
                "audits": audits,
                "profiles": profiles,
            },
            indent=1,
        )
    )
    print(text)
    log(f"written {OUT.relative_to(ROOT)}/http-{stamp}.md and .json")
    if dt_problem:
        log(f"django-tenants problem: {dt_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
