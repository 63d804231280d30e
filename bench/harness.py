"""What the benchmarks share: servers, wrk, CPU time, baselines and where results go.

- Servers run on loopback ports (``free_port``), their output in ``bench/out/``; they count as
  up once they accept a connection (``wait_listening``) and are stopped by their pid.
- The wrk command line is built here only (``wrk_cmd``: ``rotate_hosts.lua`` gives every request
  the Host of the next tenant, or one fixed Host) and its ``WRK_JSON`` line parsed here only
  (``run_wrk``).
- A benchmark's numbers are ratios to a baseline measured in the same run: ``paired`` (a run
  over the mean of the baseline runs either side of it) and ``same_round`` (over the baseline
  of its round).
- Reports go to ``bench/out/<name>-<time>.md`` and ``.json`` (``Run.write``) or are appended to
  ``bench/RESULTS.md`` (``append_results``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Self, TypedDict

from bench.common import pool_options

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
LUA = BENCH / "rotate_hosts.lua"
VIEW = "/item/"  # the view every HTTP variant serves: one Marker.objects.aget()
N_TENANTS = 50
TENANT_HOSTS = [f"b{i:02d}.localhost" for i in range(N_TENANTS)]
DB_TENANCY = os.environ.get("OMNITENANT_BENCH_DB", "omnitenant_bench")
DB_PLAIN = os.environ.get("OMNITENANT_BENCH_PLAIN_DB", "omnitenant_bench_plain")
UVICORN_FLAGS = ["--workers", "1", "--log-level", "warning", "--no-access-log"]
UVICORN_FLAGS += ["--http", "h11", "--loop", "asyncio"]  # same stack in both virtualenvs
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str, who: str = "bench") -> None:
    print(f"[{who}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# CPU time: the machine is shared, so wall-clock throughput is noisy; CPU time per request of
# the server process is much less so.
# --------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if it is gone."""
    return _stat_cpu(f"/proc/{pid}/stat")


def main_thread_cpu(pid: int) -> float:
    """User + system CPU seconds of the main thread of ``pid`` (uvicorn's event loop)."""
    return _stat_cpu(f"/proc/{pid}/task/{pid}/stat")


def _stat_cpu(path: str) -> float:
    """utime + stime of a ``/proc`` stat file, in seconds; 0 if it is gone."""
    try:
        with open(path) as fh:
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


def busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPUs busy over ``seconds``, whoever uses them."""
    before, t0 = machine_cpu()[0], time.monotonic()
    time.sleep(seconds)
    return (machine_cpu()[0] - before) / ((time.monotonic() - t0) * (os.cpu_count() or 1))


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """--quiet-below and --quiet-budget, for a ``QuietWaiter``."""
    parser.add_argument(
        "--quiet-below", type=float, default=0.25,
        help="before a run, wait while other processes use more than this share of the CPUs",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-budget", type=float, default=60, help="seconds of such waiting in all, at most"
    )


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


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, name: str, log_path: Path | None = None
) -> None:
    """Until ``proc`` accepts connections on 127.0.0.1:``port``; RuntimeError if it exits first
    or does not within 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = f":\n{log_path.read_text()}" if log_path else ""
            raise RuntimeError(f"{name} exited before it listened{output}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen within 30 s")


class Process:
    """A server started from ``cmd`` that listens on ``port``, stopped by its pid.

    Its output goes to ``log_path`` (or this process's own, without one).
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        port: int,
        env: Mapping[str, str],
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(exist_ok=True)
            self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
        )
        try:
            wait_listening(self.proc, port, name, log_path)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds (0: at once)."""
        if self.proc.poll() is None:
            if grace:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            else:
                self.proc.kill()
            self.proc.wait()
        if self._log is not None:
            self._log.close()


def run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], name: str) -> None:
    """Run ``cmd`` to the end, its output in bench/out/<name>.log; RuntimeError if it fails."""
    path = OUT / f"{name}.log"
    with path.open("w") as out:
        rc = subprocess.call(cmd, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=out)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}):\n{path.read_text()[-3000:]}")


# --------------------------------------------------------------------------------------------
# The benchmarked project: the same view under uvicorn in several variants
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
        """The marker row the view answers on ``host``: a tenant's id, or plain Django's."""
        return "plain" if host == "localhost" else host.split(".")[0]


class Server(Process):
    """A variant under uvicorn with one worker, its output in bench/out/uvicorn-<key>.log."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        port = free_port()
        cmd = [variant.python, "-m", "uvicorn", variant.app, "--host", "127.0.0.1"]
        cmd += ["--port", str(port), *UVICORN_FLAGS]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **variant.env}
        env["OMNITENANT_BENCH_APP_NAME"] = f"bench-{variant.key}"
        self.log_path: Path = OUT / f"uvicorn-{variant.key}.log"
        super().__init__(f"{variant.key}: uvicorn", cmd, port, env, self.log_path)

    def url(self, path: str = VIEW) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, host: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", VIEW, headers={"Host": host})
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


class Servers(dict[str, Server]):
    """The servers of a run by key, all stopped when the ``with`` block is left."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.values():
            server.stop()

    def start(self, variant: Variant, key: str | None = None) -> Server:
        server = self[key or variant.key] = Server(variant)
        return server

    def check(self) -> None:
        """After the load: every host still answers its own marker, no traceback in any log."""
        for key, server in self.items():
            server.verify()
            if "Traceback" in server.log_path.read_text():
                raise RuntimeError(f"{key}: traceback in {server.log_path}")


def seed_ours() -> None:
    """The schema tenants' database and plain Django's (bench/seed.py), idempotent."""
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


def versions(python: str) -> dict[str, str]:
    """Versions of Python and of the packages under test in the virtualenv of ``python``."""
    code = (
        "import json, sys; from importlib import metadata as m; "
        "names = ['django', 'django-tenants', 'uvicorn', 'psycopg', 'psycopg-pool', 'asgiref']; "
        "v = {}\nfor n in names:\n  try: v[n] = m.version(n)\n  except Exception: pass\n"
        "v['python'] = sys.version.split()[0]; print(json.dumps(v))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


class WrkErrors(TypedDict):
    connect: int
    read: int
    write: int
    status: int
    timeout: int


class Latency(TypedDict):
    mean: float
    p50: int
    p90: int
    p99: int
    max: int


class WrkJson(TypedDict):
    """The ``WRK_JSON`` line of rotate_hosts.lua (times in µs)."""

    requests: int
    duration_us: int
    bytes: int
    errors: WrkErrors
    latency_us: Latency


class WrkResult(WrkJson):
    rps: float
    errors_total: int


def lua_args(hosts: Sequence[str]) -> list[str]:
    """Arguments of rotate_hosts.lua: a fixed Host, or rotation over <prefix>00.localhost...."""
    if len(hosts) == 1:
        return ["fixed", hosts[0]]
    return [str(len(hosts)), hosts[0].split(".")[0].rstrip("0123456789")]


def wrk_cmd(
    port: int,
    hosts: Sequence[str],
    seconds: int,
    *,
    path: str = VIEW,
    threads: int = 2,
    connections: int = 64,
) -> list[str]:
    """The wrk command line of every benchmark: ``seconds`` of load on ``path``, each request
    with the Host of the next of ``hosts``."""
    return [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{port}{path}", "--", *lua_args(hosts),
    ]  # fmt: skip


def run_wrk(cmd: list[str]) -> WrkResult:
    """Run wrk to the end and parse the ``WRK_JSON`` line rotate_hosts.lua prints."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            raw: WrkJson = json.loads(line.removeprefix("WRK_JSON "))
            e = raw["errors"]
            return {
                **raw,
                "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                "errors_total": e["connect"] + e["read"] + e["write"] + e["status"] + e["timeout"],
            }
    raise RuntimeError(f"no WRK_JSON line in wrk output:\n{out}")


def wrk_with_cpu(cmd: list[str], pid: int) -> tuple[WrkResult, float]:
    """``run_wrk``, and the CPU ms per request that process ``pid`` used meanwhile."""
    before = proc_cpu(pid)
    result = run_wrk(cmd)
    return result, 1000 * (proc_cpu(pid) - before) / max(result["requests"], 1)


@dataclass
class Load:
    """How a benchmark loads its servers: ``rounds`` of ``duration`` s per server, each after
    ``warmup`` s, with wrk's ``threads`` and ``connections``."""

    duration: int
    warmup: int
    rounds: int
    connections: int
    threads: int

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, *, duration: int, rounds: int) -> None:
        parser.add_argument(
            "--duration", type=int, default=duration, help="seconds per measured run"
        )
        parser.add_argument(
            "--warmup", type=int, default=2, help="seconds of warm-up before each run"
        )
        parser.add_argument("--rounds", type=int, default=rounds)
        parser.add_argument("--connections", type=int, default=64)
        parser.add_argument("--threads", type=int, default=2)

    def wrk(
        self, server: Server, seconds: int, hosts: Sequence[str] | None = None, path: str = VIEW
    ) -> list[str]:
        """``wrk_cmd`` on ``server``: its variant's hosts unless ``hosts`` are given."""
        return wrk_cmd(
            server.port, hosts or server.variant.hosts, seconds, path=path,
            threads=self.threads, connections=self.connections,
        )  # fmt: skip

    def meta(self) -> LoadMeta:
        return {
            "connections": self.connections,
            "threads": self.threads,
            "rounds": self.rounds,
            "duration": self.duration,
            "warmup": self.warmup,
            "pool": json.dumps(pool_options()),
        }


class LoadMeta(TypedDict):
    connections: int
    threads: int
    rounds: int
    duration: int
    warmup: int
    pool: str  # OPTIONS["pool"] of every variant, as JSON


def describe_load(meta: LoadMeta) -> str:
    """``wrk `-t2 -c64`, 3 rounds of 10 s per variant (after 2 s warm-up each)``."""
    return (
        f"wrk `-t{meta['threads']} -c{meta['connections']}`, {meta['rounds']} rounds of "
        f"{meta['duration']} s per variant (after {meta['warmup']} s warm-up each)"
    )


# --------------------------------------------------------------------------------------------
# Ratios to the baseline
# --------------------------------------------------------------------------------------------


class RoundRun(WrkResult):
    round: int


def round_order(keys: Sequence[str], rounds: int, base: str = "plain") -> list[tuple[int, str]]:
    """(round, key): the baseline, then the others (their order rotated each round); the
    baseline once more at the end, so that every other run has a baseline run each side."""
    others = [k for k in keys if k != base]
    order: list[tuple[int, str]] = []
    for r in range(rounds):
        shift = r % len(others) if others else 0
        order += [(r, base)] + [(r, k) for k in others[shift:] + others[:shift]]
    order.append((rounds, base))
    return order


def paired[R: RoundRun](
    runs: Mapping[str, Sequence[R]], key: str, value: Callable[[R], float]
) -> list[float]:
    """A run's ``value`` over the mean of the plain runs around it (same round and the next).

    For plain itself: over its neighbours' mean (the noise floor).
    """
    plain = {r["round"]: value(r) for r in runs["plain"]}
    around = (-1, 1) if key == "plain" else (0, 1)
    return [
        value(r) / statistics.mean(plain[x] for x in (r["round"] + d for d in around) if x in plain)
        for r in runs[key]
    ]


def same_round(runs: Sequence[WrkResult], base: Sequence[WrkResult]) -> list[float]:
    """req/s of each run over that of the baseline's run in the same round."""
    return [a["rps"] / b["rps"] for a, b in zip(runs, base, strict=True)]


class PairedSummary(TypedDict):
    rps_median: float
    rps_runs: list[float]
    ratio_median: float
    ratio_min: float
    ratio_max: float
    ratios: list[float]
    p50_ms: float
    p99_ms: float
    errors: int


def paired_summary(runs: Mapping[str, Sequence[RoundRun]], key: str) -> PairedSummary:
    """req/s, its paired ratios to plain, latency and errors of the runs of ``key``."""
    results = runs[key]
    ratios = paired(runs, key, lambda r: r["rps"])
    return {
        "rps_median": statistics.median(r["rps"] for r in results),
        "rps_runs": [round(r["rps"], 1) for r in results],
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": [round(x, 3) for x in ratios],
        "p50_ms": statistics.median(r["latency_us"]["p50"] for r in results) / 1000,
        "p99_ms": statistics.median(r["latency_us"]["p99"] for r in results) / 1000,
        "errors": sum(r["errors_total"] for r in results),
    }


# --------------------------------------------------------------------------------------------
# A run and its report
# --------------------------------------------------------------------------------------------


def preflight(script: str, *needs: str) -> bool:
    """Whether PostgreSQL (OMNITENANT_PG_PORT and the ``needs``) and wrk are there; if not, say
    to run ``script``, which provides them. Makes bench/out/."""
    missing = [name for name in ("OMNITENANT_PG_PORT", *needs) if not os.environ.get(name)]
    if missing:
        log(f"{' / '.join(missing)} not set: run {script}, which starts the servers")
        return False
    if shutil.which("wrk") is None:
        log(f"wrk is not installed: run {script}, or apt-get install wrk")
        return False
    OUT.mkdir(exist_ok=True)
    return True


class RunMeta(TypedDict):
    started: str
    elapsed_s: float
    machine: str
    command: str


@dataclass
class Run:
    """One run of benchmark ``name``: when it started, and where its report goes."""

    name: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.monotonic)

    def meta(self, argv: Sequence[str], on_machine: str) -> RunMeta:
        """``on_machine``: what runs on the same machine (``wrk, uvicorn and PostgreSQL``)."""
        return {
            "started": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "elapsed_s": time.monotonic() - self.t0,
            "machine": f"{os.cpu_count()} CPUs, shared VM; {on_machine} on the same machine",
            "command": os.environ.get("OMNITENANT_BENCH_COMMAND")
            or " ".join([f"python -m bench.bench_{self.name}", *argv]),
        }

    def write(self, text: str, data: object) -> None:
        """bench/out/<name>-<time>.md (the report, also printed) and .json (``data``)."""
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        (OUT / f"{self.name}-{stamp}.md").write_text(text)
        (OUT / f"{self.name}-{stamp}.json").write_text(json.dumps(data, indent=1))
        print(text)
        log(f"written {OUT.relative_to(ROOT)}/{self.name}-{stamp}.md and .json")


def report_head(meta: RunMeta) -> list[str]:
    """The first lines of a report: when, how long, on what, and the command."""
    return [
        f"Run {meta['started']}, {meta['elapsed_s']:.0f} s in all; {meta['machine']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]


def append_results(text: str, path: Path = RESULTS) -> None:
    """Append a section to bench/RESULTS.md (or ``path``)."""
    with path.open("a") as f:
        f.write(text)
