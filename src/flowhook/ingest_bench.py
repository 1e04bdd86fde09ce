"""End-to-end ingestion throughput: `flowhook serve` beside a bare handler.

Both servers run under uvicorn (uvloop + httptools) on loopback and take the
same Stripe-signed ~1 KB webhook from the same load generator in the same
run: wrk when it is installed (`apt-get install wrk`), else an asyncio
client, which is slower and so understates both sides alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from flowhook.bench import STRIPE_SOURCE, stripe_event

ADMIN_TOKEN = "bench-admin-" + "x" * 24
SIGNING_SECRET = "whsec_bench_" + "s" * 24
# Without a flowInvocationId each delivery is a new invocation (no idempotent replay).
UNKEYED_SOURCE = STRIPE_SOURCE.replace("    flowInvocationId: request.body.id,\n", "")
BARE_APP_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
#: How `flowhook serve` runs uvicorn, so that the bare handler is served the same way.
UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning")


@dataclass
class LoadFigures:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    server_cpu_us: float = float("nan")  # CPU the server's processes spent per request (all threads and children)
    max_ms: float = float("nan")
    errors: int = 0  # requests the load generator gave up on (socket errors, timeouts)
    client_cpu_us: float = float("nan")  # CPU the load generator spent per request


def process_tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its live descendants (uvicorn workers, sandbox workers).

    Throughput on a shared two-core machine drifts with whatever else runs;
    CPU per request barely does, and it says where the cores went.
    """
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


class CpuQuota:
    """A cgroup that holds a server and every process it starts to `cpus` CPUs, as `docker run --cpus` does.

    On a machine whose cores the load generator shares, it is how scaling
    with `--workers` can be shown at all: N processes get N times one
    process's share, and whatever the machine has beyond that is left to
    wrk. Needs root and the cgroup `cpu` controller (v1 or v2).
    """

    PERIOD_US = 10_000  # short periods: a throttled server stalls for milliseconds, not tens of them

    def __init__(self, cpus: float) -> None:
        quota, name = max(1000, round(cpus * self.PERIOD_US)), f"flowhook-bench-{os.getpid()}"
        unified = Path("/sys/fs/cgroup")
        controllers = unified / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():  # cgroup v2
            self.path, self._limits = unified / name, {"cpu.max": f"{quota} {self.PERIOD_US}"}
        else:
            self.path = unified / "cpu" / name
            self._limits = {"cpu.cfs_period_us": str(self.PERIOD_US), "cpu.cfs_quota_us": str(quota)}

    def __enter__(self) -> CpuQuota:
        try:
            self.path.mkdir()
            for name, value in self._limits.items():
                (self.path / name).write_text(value)
        except OSError as error:
            raise SystemExit(f"a CPU quota needs root and the cgroup cpu controller: {error}") from None
        return self

    def join(self) -> None:
        """Put the calling process (a child about to exec the server) in the group."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def __exit__(self, *exc_info: object) -> None:
        for _ in range(50):  # the server's last processes may still be exiting
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


@contextmanager
def running(
    command: list[str], health_url: str, env: dict[str, str] | None = None, cpus: float | None = None
) -> Iterator[int]:
    """The server's pid, once it answers `health_url`; with `cpus`, it and its children held to that many CPUs."""
    with CpuQuota(cpus) if cpus is not None else nullcontext() as quota:
        join = quota.join if quota is not None else None
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=join)
        try:
            wait_until_up(health_url)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def create_hook(base_url: str) -> str:
    """A published flow with a live, Stripe-verified JavaScript webhook; returns its URL path."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        flow = client.post("/v1/default/action-flows", json={"name": "bench", "variables": [], "steps": []})
        flow.raise_for_status()
        flow_id = flow.json()["id"]
        client.post(f"/v1/default/action-flows/{flow_id}/publish").raise_for_status()
        trigger = client.post(
            f"/v1/default/action-flows/{flow_id}/triggers",
            json={
                "type": "webhook",
                "mode": "live",
                "mapping": {"kind": "javascript", "source": UNKEYED_SOURCE},
                "verification": {"preset": "stripe", "secret": SIGNING_SECRET},
            },
        )
        trigger.raise_for_status()
        return f"/hooks/{trigger.json()['hookId']}"


def _wrk_script(body: bytes, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [
        f"wrk.headers[{_lua_string(name.encode())}] = {_lua_string(value.encode())}" for name, value in headers.items()
    ]
    return "\n".join(lines) + "\n"


def _lua_string(data: bytes) -> str:
    return '"' + data.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'


def _milliseconds(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match[1]), match[2]
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


#: wrk leaves a request that takes longer than its timeout out of every latency figure (2 s by default,
#: which hid multi-second stalls); this one is long enough for any stall to be measured.
WRK_TIMEOUT = "30s"


def load_with_wrk(
    name: str, url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int
) -> LoadFigures:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(body, headers))
    duration = f"-d{max(1, round(seconds))}s"
    try:
        output = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", duration, "--timeout", WRK_TIMEOUT, "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    return wrk_figures(name, output)


def wrk_figures(name: str, output: str) -> LoadFigures:
    """The figures of a `wrk --latency` report."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    # Anchored: a thread-stats line can end in "…50%" too ("+/- Stdev 70.50%").
    p50 = _milliseconds(re.search(r"^\s*50%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    p99 = _milliseconds(re.search(r"^\s*99%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    slowest = _milliseconds(re.search(r"^\s*Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = sum(int(count) for count in socket_errors.groups()) if socket_errors else 0
    return LoadFigures(name, rate, p50, p99, int(non_2xx[1]) if non_2xx else 0, max_ms=slowest, errors=errors)


async def _load_with_httpx(
    name: str, url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int
) -> LoadFigures:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def connection() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                failures += response.status_code >= 300

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadFigures(
        name, len(latencies) / elapsed, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)], failures
    )


def load(
    name: str, url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int, server_pid: int
) -> LoadFigures:
    """POSTs of `body` with `headers` for `seconds` on `connections`: the rate, the latencies, and the CPU per
    request of the server (`server_pid` and its descendants) and of the load generator."""
    before, started = process_tree_cpu_seconds(server_pid), time.perf_counter()
    if shutil.which("wrk"):
        client_before = _cpu_seconds(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
        figures = load_with_wrk(name, url, body, headers, seconds, connections)
        client = _cpu_seconds(resource.RUSAGE_CHILDREN) - client_before
    else:
        client_before = _cpu_seconds(resource.RUSAGE_SELF)
        figures = asyncio.run(_load_with_httpx(name, url, body, headers, seconds, connections))
        client = _cpu_seconds(resource.RUSAGE_SELF) - client_before
    spent, elapsed = process_tree_cpu_seconds(server_pid) - before, time.perf_counter() - started
    handled = figures.requests_per_second * elapsed
    figures.server_cpu_us, figures.client_cpu_us = spent / handled * 1e6, client / handled * 1e6
    return figures


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def cpu_budget_us(bare: LoadFigures, ratio: float = 0.5, cores: int | None = None) -> float:
    """Server CPU per request this machine can afford at `ratio` × the bare handler's rate.

    The cores the load generator does not take at that rate, shared out per request: whatever the
    design, a server that spends more CPU per request than this cannot reach the rate here.
    """
    rate = ratio * bare.requests_per_second
    cores = cores or os.cpu_count() or 1
    return (cores * 1e6 - rate * bare.client_cpu_us) / rate


def load_bare(
    body: bytes, headers: dict[str, str], seconds: float, connections: int, cpus: float | None = None
) -> LoadFigures:
    """The reference: a bare Starlette handler that reads the body and answers 202, served as `serve` is."""
    return _load_reference("bare Starlette handler", "bare_app:app", body, headers, seconds, connections, cpus)


def load_floor(
    body: bytes, headers: dict[str, str], seconds: float, connections: int, cpus: float | None = None
) -> LoadFigures:
    """The floor of the design (benchmarks/floor_app.py): verify, map in a QuickJS worker process, validate,
    group-commit two rows, answer; none of flowhook's features. Served as `serve` is."""
    env = {**os.environ, "FLOOR_SECRET": SIGNING_SECRET, "FLOOR_SOURCE": UNKEYED_SOURCE}
    return _load_reference("floor of the design", "floor_app:app", body, headers, seconds, connections, cpus, env)


def _load_reference(
    name: str,
    app: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    connections: int,
    cpus: float | None,
    env: dict[str, str] | None = None,
) -> LoadFigures:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(BARE_APP_DIR), app, "--port", str(port)]
    with running([*command, *UVICORN_FLAGS], f"http://127.0.0.1:{port}/", env, cpus) as pid:
        url = f"http://127.0.0.1:{port}/hooks/bench"
        return load(_limited(name, cpus), url, body, headers, seconds, connections, pid)


def _limited(name: str, cpus: float | None) -> str:
    return name if cpus is None else f"{name}, {cpus:g} CPU"


def measure(
    seconds: float = 5.0,
    connections: int = 32,
    server_workers: int = 1,
    executor: bool = True,
    database: str | None = None,
    floor: bool = False,
    cpus_per_worker: float | None = None,
) -> list[LoadFigures]:
    """Figures for the bare handler and for `flowhook serve` with `server_workers` processes.

    `executor=False` measures ingestion alone: the flow executor, which `serve`
    runs in-process by default, is left to a separate `flowhook worker`.
    `database` (a PostgreSQL URL) replaces the embedded SQLite file; each run
    adds its own flow and trigger to it. `floor` adds the floor of the design (`load_floor`).
    `cpus_per_worker` holds each server to that many CPUs per process (CpuQuota): the references to one
    share, `serve` to `server_workers` shares, sandbox workers included.
    """
    body = orjson.dumps(stripe_event())
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature(body, SIGNING_SECRET, int(time.time())),
    }
    figures = []

    figures.append(load_bare(body, headers, seconds, connections, cpus_per_worker))
    if floor:
        figures.append(load_floor(body, headers, seconds, connections, cpus_per_worker))
    serve_cpus = None if cpus_per_worker is None else cpus_per_worker * server_workers

    with tempfile.TemporaryDirectory(prefix="flowhook-bench-") as data_dir:
        port = free_port()
        env = {**os.environ, "FLOWHOOK_ADMIN_TOKEN": ADMIN_TOKEN, "FLOWHOOK_EXECUTOR": str(executor).lower()}
        serve = [
            sys.executable,
            "-m",
            "flowhook",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--workers",
            str(server_workers),
            *(["--database", database] if database else []),
        ]
        with running(serve, f"http://127.0.0.1:{port}/healthz", env=env, cpus=serve_cpus) as pid:
            base = f"http://127.0.0.1:{port}"
            path = create_hook(base)
            name = f"flowhook serve ({server_workers} process{'es' if server_workers > 1 else ''})"
            name += "" if executor else ", no executor"
            name += ", PostgreSQL" if database else ""
            figures.append(load(_limited(name, serve_cpus), base + path, body, headers, seconds, connections, pid))
    return figures


def table(figures: list[LoadFigures], title: str = "server") -> list[str]:
    """Printable lines, each ratio against the first row (the bare handler of the same run), then what
    the 0.5× target leaves each request of the machine's CPU (`cpu_budget_us`)."""
    bare = figures[0]
    lines = [
        f"{title:44s} {'req/s':>9s} {'vs bare':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'non-2xx':>8s}"
        f" {'errors':>7s} {'server CPU us/req':>18s} {'client CPU us/req':>18s}"
    ]
    for figure in figures:
        lines.append(
            f"{figure.name:44s} {figure.requests_per_second:9,.0f}"
            f" {figure.requests_per_second / bare.requests_per_second:7.2f}x"
            f" {figure.p50_ms:7.2f} {figure.p99_ms:7.2f} {figure.max_ms:7.1f} {figure.non_2xx:8d} {figure.errors:7d}"
            f" {figure.server_cpu_us:18.0f} {figure.client_cpu_us:18.0f}"
        )
    lines.append(
        f"at 0.50x the bare handler ({bare.requests_per_second / 2:,.0f} req/s) this machine's {os.cpu_count()}"
        f" cores leave {cpu_budget_us(bare):.0f} us of server CPU per request beside the load generator"
    )
    return lines


def ingest_figures(seconds: float = 5.0) -> list[str]:
    """Printable lines for `flowhook bench`."""
    return table(measure(seconds), "ingestion (32 connections)")
