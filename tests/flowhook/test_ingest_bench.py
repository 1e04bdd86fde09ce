"""The load measurement's own arithmetic (CPU of a process tree, the printed table) and its floor reference."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from flowhook.bench import stripe_event
from flowhook.ingest_bench import (
    BARE_APP_DIR,
    UNKEYED_SOURCE,
    UVICORN_FLAGS,
    CpuQuota,
    LoadFigures,
    cpu_budget_us,
    free_port,
    process_tree_cpu_seconds,
    running,
    stripe_signature,
    table,
    wrk_figures,
)

BURN = (
    "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    "print('done', flush=True)\ninput()"
)


def test_tree_cpu_counts_children_and_grandchildren() -> None:
    """A grandchild that burned 0.3 s of CPU is counted under its grandparent, not under an unrelated pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "done\n"
        assert process_tree_cpu_seconds(parent.pid) >= 0.25
        assert process_tree_cpu_seconds(os.getpid()) >= 0.25  # the test process is their ancestor
    finally:
        parent.communicate("\n", timeout=10)


def test_tree_cpu_of_a_missing_process_is_zero() -> None:
    assert process_tree_cpu_seconds(2**22 + 1) == 0.0  # above the kernel's highest pid_max: never a live pid


def test_table_ratios_are_against_the_first_row() -> None:
    bare = LoadFigures("bare", 20_000, 1.0, 2.0, 0, 30.0, max_ms=9.0, client_cpu_us=25.0)
    served = LoadFigures("served", 5_000, 4.0, 12.5, 3, 180.0, max_ms=2100.0, errors=2, client_cpu_us=26.0)
    header, first, second, budget = table([bare, served])
    assert header.split()[:2] == ["server", "req/s"]
    assert first.split() == ["bare", "20,000", "1.00x", "1.00", "2.00", "9.0", "0", "0", "30", "25"]
    assert second.split() == ["served", "5,000", "0.25x", "4.00", "12.50", "2100.0", "3", "2", "180", "26"]
    assert budget.startswith("at 0.50x the bare handler (10,000 req/s)")


def test_the_cpu_budget_is_what_the_load_generator_leaves_per_request() -> None:
    """At 10,000 req/s two cores are 200 us per request; a client taking 25 us of them leaves 175."""
    bare = LoadFigures("bare", 20_000, 1.0, 2.0, 0, 30.0, client_cpu_us=25.0)
    assert cpu_budget_us(bare, 0.5, cores=2) == 175.0
    assert cpu_budget_us(bare, 1.0, cores=1) == 25.0  # one core at 20,000 req/s: 50 us a request, half the client's


WRK_REPORT = """Running 10s test @ http://127.0.0.1:8080/hooks/x
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.68ms    3.23ms   2.01s    73.52%
    Req/Sec     1.95k   120.00     2.20k    70.50%
  Latency Distribution
     50%    6.47ms
     75%    8.99ms
     90%   11.20ms
     99%   17.26ms
  38686 requests in 10.00s, 7.50MB read
  Socket errors: connect 0, read 1, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:   3868.56
Transfer/sec:    768.00KB
"""


def test_a_wrk_report_is_read_with_its_slowest_request_and_its_errors() -> None:
    figures = wrk_figures("served", WRK_REPORT)
    assert (figures.requests_per_second, figures.p50_ms, figures.p99_ms) == (3868.56, 6.47, 17.26)
    assert (round(figures.max_ms, 6), figures.non_2xx, figures.errors) == (2010.0, 2, 4)


def test_the_floor_of_the_design_verifies_maps_validates_and_answers() -> None:
    """The reference `load.py --floor` measures must do its work: a signed request is mapped and stored (202),
    a tampered one refused (401), a mapping output the schema refuses is a 422."""
    body = orjson.dumps(stripe_event())
    signed = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature(body, "s3cret", int(time.time())),
    }
    for source, expected in ((UNKEYED_SOURCE, 202), ("function map(r) { return {targetUserIds: []}; }", 422)):
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(BARE_APP_DIR),
            "floor_app:app",
            "--port",
            str(port),
        ]
        env = {**os.environ, "FLOOR_SECRET": "s3cret", "FLOOR_SOURCE": source}
        with running([*command, *UVICORN_FLAGS], f"http://127.0.0.1:{port}/", env):
            url = f"http://127.0.0.1:{port}/hooks/bench"
            assert httpx.post(url, content=body, headers=signed).status_code == expected
            assert httpx.post(url, content=body + b" ", headers=signed).status_code == 401


def test_a_cpu_quota_holds_the_server_and_its_children() -> None:
    """`load.py --cpus-per-worker`: the server is in a cgroup limited to its share, removed with the server."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(BARE_APP_DIR), "bare_app:app", "--port", str(port)]
    group = CpuQuota(0.5).path  # the group `running` makes: named after this process
    try:
        with running([*command, *UVICORN_FLAGS], f"http://127.0.0.1:{port}/", cpus=0.5) as pid:
            assert f"/{group.name}" in Path(f"/proc/{pid}/cgroup").read_text()
            limit = group / "cpu.max" if (group / "cpu.max").exists() else group / "cpu.cfs_quota_us"
            assert limit.read_text().split()[0] == "5000"  # µs of each 10 ms period
    except SystemExit as refused:  # not root, or no cgroup cpu controller here
        pytest.skip(str(refused))
    assert not group.exists()
