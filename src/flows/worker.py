"""`flowhook worker`: the flow executor, the event dispatcher and the bulk runner without the HTTP service.

On PostgreSQL any number of workers (and `serve` processes) share the work;
on SQLite one executor per database file is enough, since SQLite has one
writer anyway.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from flows.bulk_runner import BulkRunner
from flows.dispatcher import DispatcherConfig, EventDispatcher
from flows.executor import Executor, ExecutorConfig
from flows.interpreter import RetryPolicy
from flows.marketo_callbacks import CallbackConfig, MarketoCallbacks
from flows.marketo_leads import MarketoLeads
from flows.retention import InvocationRetention
from ingress.mapping_runner import MappingRunner
from ingress.retention import EVENT_DELIVERIES, LogRetention
from ingress.settings import Settings
from mapper.pool import SandboxPool
from store import Store, database_url


def executor_config(settings: Settings) -> ExecutorConfig:
    return ExecutorConfig(
        batch_size=settings.executor_batch,
        poll_seconds=settings.executor_poll_seconds,
        retry=RetryPolicy(max_attempts=settings.executor_max_attempts, base_seconds=settings.executor_retry_seconds),
    )


def invocation_retention(store: Store, settings: Settings) -> InvocationRetention:
    """Whoever runs the executor prunes what it finished (flows.retention)."""
    return InvocationRetention(store, settings.invocation_retention_days, settings.prune_interval_seconds)


def event_dispatcher(
    store: Store, runner: MappingRunner, settings: Settings, executor: Executor, retention: LogRetention
) -> EventDispatcher:
    """Whoever runs the executor dispatches events too, waking the executor for the runs they start."""
    config = DispatcherConfig(poll_seconds=settings.executor_poll_seconds)
    return EventDispatcher(store, runner, config, on_accepted=executor.wake, on_settled=retention.note)


def bulk_runner(store: Store, runner: MappingRunner, settings: Settings, executor: Executor) -> BulkRunner:
    """Whoever runs the executor works through bulk start tasks too (Marketo's, with their mappings and
    callbacks), waking the executor for the runs they start."""
    callbacks = MarketoCallbacks(store, CallbackConfig(allow_http=settings.marketo_allow_http_callbacks))
    return BulkRunner(store, on_started=executor.wake, marketo=(MarketoLeads(store, runner), callbacks))


def delivery_retention(store: Store, settings: Settings) -> LogRetention:
    """Settled event deliveries are kept as many per trigger as requests in the request log."""
    return LogRetention(store, EVENT_DELIVERIES, settings.request_log_retention, settings.prune_interval_seconds)


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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    executor.start()
    retention.start()
    deliveries.start()
    dispatcher.start()
    bulk.start()
    try:
        await stop.wait()
    finally:
        await retention.close()
        await bulk.close()
        await dispatcher.close()
        await deliveries.close()
        await executor.close()
        await pool.close()
        await store.close()
