"""The load measurement's own arithmetic: CPU of a process tree, the printed table."""

from __future__ import annotations

import os
import subprocess
import sys

from flowhook.ingest_bench import LoadFigures, process_tree_cpu_seconds, table

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
    bare = LoadFigures("bare", 20_000, 1.0, 2.0, 0, 30.0)
    served = LoadFigures("served", 5_000, 4.0, 12.5, 3, 180.0)
    header, first, second = table([bare, served])
    assert header.split()[:2] == ["server", "req/s"]
    assert first.split() == ["bare", "20,000", "1.00x", "1.00", "2.00", "0", "30"]
    assert second.split() == ["served", "5,000", "0.25x", "4.00", "12.50", "3", "180"]
