"""Two (or more) trees of flowhook, alternated in one sitting: is a change faster or slower, beyond the drift?

    git archive REV | tar -x -C /tmp/old
    python benchmarks/ab.py --tree old=/tmp/old/src --tree new=src --rounds 3 --seconds 6

Absolute figures drift by 20% within minutes on a shared machine, so two
runs an hour apart say nothing about a change. Each round measures every
tree once, one after the other (`load.py`'s measurement, its bare handler
included), with the tree's `src` first on PYTHONPATH; compare the trees
round by round.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

MEASURE = """
import sys
from flowhook.ingest_bench import measure
figures = [f for f in measure(seconds=float(sys.argv[1])) if f.name.startswith("flowhook")][0]
print(f"{figures.requests_per_second:8,.0f} req/s  p50 {figures.p50_ms:5.2f} ms  p99 {figures.p99_ms:6.2f} ms  "
      f"{figures.server_cpu_us:4.0f} us/req")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH of a tree's src directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.tree)
    for round_number in range(1, args.rounds + 1):
        for name, source in trees.items():
            env = {**os.environ, "PYTHONPATH": os.path.abspath(source)}
            run = subprocess.run(
                [sys.executable, "-c", MEASURE, str(args.seconds)], env=env, capture_output=True, text=True
            )
            print(f"round {round_number}  {name:>8}  {run.stdout.strip() or run.stderr.strip()[-400:]}", flush=True)


if __name__ == "__main__":
    main()
