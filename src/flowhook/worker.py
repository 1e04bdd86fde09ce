"""`flowhook worker`: the flow executor, the event dispatcher, the bulk runner and the segment evaluator
without the HTTP service.

On PostgreSQL any number of workers (and `serve` processes) share the work;
on SQLite one executor per database file is enough, since SQLite has one
writer anyway. The pieces are composed from the service's settings as
`serve` composes them (ingress.services).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from flows.executor import Executor
from flows.mapping_runner import MappingRunner
from flows.segment_evaluation import SegmentEvaluator
from ingress.services import bulk_runner, delivery_retention, event_dispatcher, executor_config, invocation_retention
from ingress.settings import Settings
from mapper.pool import SandboxPool
from store import Store, database_url


def run_worker(data_dir: str | Path, database: str | None) -> None:
    """Run the executor and the event dispatcher until SIGINT or SIGTERM; other settings come from FLOWHOOK_*."""
    asyncio.run(_work(Settings.from_env(data_dir=Path(data_dir), database=database)))


async def _work(settings: Settings) -> None:
    url = database_url(settings.database, settings.data_dir)
    store = await Store.open(url, max_batch=settings.max_batch, fsync=settings.durability == "fsync")
    pool = SandboxPool(settings.sandbox_workers, limits=settings.mapping_limits)  # JavaScript event mappings
    try:
        await pool.start()
    except BaseException:
        await store.close()
        raise
    executor = Executor(store, executor_config(settings))
    retention = invocation_retention(store, settings)
    deliveries = delivery_retention(store, settings)
    runner = MappingRunner(pool, settings.mapping_limits)
    dispatcher = event_dispatcher(store, runner, settings, executor, deliveries)
    bulk = bulk_runner(store, runner, settings, executor)
    evaluator = SegmentEvaluator(store, on_delivered=dispatcher.wake)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shown = url.render_as_string(hide_password=True)
    print(f"flowhook worker: running flows from {shown} (Ctrl+C stops it)", file=sys.stderr, flush=True)
    executor.start()
    retention.start()
    deliveries.start()
    dispatcher.start()
    bulk.start()
    evaluator.start()
    try:
        await stop.wait()
    finally:
        await retention.close()
        await bulk.close()
        await evaluator.close()
        await dispatcher.close()
        await deliveries.close()
        await executor.close()
        await pool.close()
        await store.close()
