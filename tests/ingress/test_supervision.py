"""`flowhook serve --workers 2` as a real process tree: its workers end with their supervisor.

The QA finding: a supervisor killed with SIGKILL left both workers serving
the port under PID 1, so a new `serve` could not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flowhook.ingest_bench import free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; PID 1 reaps it when it gets to it


def wait_for(condition: object, what: str, seconds: float = 60) -> None:
    """Until `condition()` holds; a failure naming `what` after `seconds` (a slow machine only waits longer)."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FLOWHOOK_ADMIN_TOKEN": "supervision-admin", "FLOWHOOK_EXECUTOR": "false"}
    command = [sys.executable, "-m", "flowhook", "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    url = f"http://127.0.0.1:{port}/healthz"
    (tmp_path / "again.log").touch()
    with (tmp_path / "serve.log").open("wb") as log:
        supervisor = subprocess.Popen([*command, "--workers", "2"], env=env, stdout=log, stderr=log)
    workers: set[int] = set()
    try:

        def serving(process: subprocess.Popen[bytes] = supervisor) -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text() + (tmp_path / "again.log").read_text()
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(serving, "serve --workers 2 never answered")
        workers = children(supervisor.pid)
        assert len(workers) >= 2  # uvicorn's two workers (and multiprocessing's resource tracker, if it runs)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
        wait_for(lambda: not any(alive(pid) for pid in workers), "a worker outlived its supervisor")
        with (tmp_path / "again.log").open("wb") as log:
            again = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            wait_for(lambda: serving(again), "a new serve could not take the port")
        finally:
            again.terminate()
            again.wait(timeout=30)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for pid in workers:  # left behind only when the test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
