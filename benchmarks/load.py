"""Load script: end-to-end accepted webhooks/s and latency of `flowhook serve`
beside a bare Starlette handler, measured in the same run.

    python benchmarks/load.py --seconds 10 --connections 32 --workers 1 2 [--no-executor] [--database URL] [--floor]
        [--cpus-per-worker 0.5]

`--cpus-per-worker` (root, cgroup cpu controller) holds each server to that
many CPUs per process, as `docker run --cpus` does: the references to one
share, `serve --workers N` to N shares. On a machine whose cores wrk shares,
it is how scaling with workers can show: N shares are N times one share.
"""

from __future__ import annotations

import argparse

from flowhook.ingest_bench import measure, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="server process counts to measure")
    parser.add_argument(
        "--no-executor", action="store_true", help="ingestion alone: no flow executor in the serve processes"
    )
    parser.add_argument("--database", help="a PostgreSQL URL instead of the embedded SQLite file")
    parser.add_argument(
        "--floor", action="store_true", help="also measure the floor of the design (benchmarks/floor_app.py)"
    )
    parser.add_argument("--cpus-per-worker", type=float, help="hold each server to this many CPUs per process")
    args = parser.parse_args()
    for workers in args.workers:
        figures = measure(
            args.seconds,
            args.connections,
            workers,
            executor=not args.no_executor,
            database=args.database,
            floor=args.floor,
            cpus_per_worker=args.cpus_per_worker,
        )
        lines = table(figures)
        if args.cpus_per_worker is not None:  # the CPU budget line counts the machine's cores, not the quota
            lines = lines[:-1]
        print("\n".join(lines))


if __name__ == "__main__":
    main()
