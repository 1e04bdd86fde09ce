"""The long-lived parts of a running service, started and stopped with the app.

The functions at the end compose the executor's companions from the
settings; `flowhook worker` (flowhook.worker) runs the same pieces without
the HTTP service.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.bulk_runner import BulkRunner
from flows.dispatcher import DispatcherConfig, EventDispatcher
from flows.executor import Executor, ExecutorConfig
from flows.interpreter import RetryPolicy
from flows.mapping_runner import MappingRunner
from flows.marketo_callbacks import CallbackConfig, MarketoCallbacks
from flows.marketo_leads import MarketoLeads
from flows.retention import InvocationRetention
from flows.segment_evaluation import SegmentEvaluator
from ingress.allowlist import IpAllowlist
from ingress.auth import AdminAuth, admin_token_hash
from ingress.hook_configs import HookConfigs
from ingress.preview_sandbox import PreviewSandbox
from ingress.retention import EVENT_DELIVERIES, REQUEST_LOG, LogRetention
from ingress.settings import Settings
from ingress.token_attempts import TokenAttempts
from ingress.token_cache import TokenCache
from mapper.pool import SandboxPool
from store import Store, database_url


@dataclass
class Services:
    settings: Settings
    store: Store
    pool: SandboxPool
    runner: MappingRunner
    hook_configs: HookConfigs
    admin_auth: AdminAuth
    retention: LogRetention  # of the request log
    trusted_proxies: IpAllowlist
    previews: PreviewSandbox
    tokens: TokenCache  # OAuth2 access tokens looked up recently
    token_attempts: TokenAttempts  # failed client authentications at /oauth/token
    executor: Executor | None = None
    invocation_retention: InvocationRetention | None = None  # with the executor
    dispatcher: EventDispatcher | None = None  # with the executor
    delivery_retention: LogRetention | None = None  # with the dispatcher
    bulk_runner: BulkRunner | None = None  # with the executor
    segment_evaluator: SegmentEvaluator | None = None  # with the event dispatcher

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        url = database_url(settings.database, settings.data_dir)
        store = await Store.open(url, max_batch=settings.max_batch, fsync=settings.durability == "fsync")
        try:
            expected_hash = await admin_token_hash(store, settings.admin_token)
            pool = SandboxPool(settings.sandbox_workers, limits=settings.mapping_limits)
            await pool.start()
        except BaseException:
            await store.close()
            raise
        runner = MappingRunner(pool, settings.mapping_limits)
        retention = LogRetention(store, REQUEST_LOG, settings.request_log_retention, settings.prune_interval_seconds)
        retention.start()
        executor: Executor | None = None
        finished_work: InvocationRetention | None = None
        dispatcher: EventDispatcher | None = None
        deliveries: LogRetention | None = None
        bulk: BulkRunner | None = None
        evaluator: SegmentEvaluator | None = None
        if settings.executor:
            executor = Executor(store, executor_config(settings))
            executor.start()
            finished_work = invocation_retention(store, settings)
            finished_work.start()
            deliveries = delivery_retention(store, settings)
            deliveries.start()
            dispatcher = event_dispatcher(store, runner, settings, executor, deliveries)
            dispatcher.start()
            bulk = bulk_runner(store, runner, settings, executor)
            bulk.start()
            evaluator = SegmentEvaluator(store, on_delivered=dispatcher.wake)
            evaluator.start()
        return cls(
            settings=settings,
            store=store,
            pool=pool,
            runner=runner,
            hook_configs=HookConfigs(store, runner, settings.config_cache_seconds),
            admin_auth=AdminAuth(expected_hash),
            retention=retention,
            trusted_proxies=IpAllowlist(settings.trusted_proxies),
            previews=PreviewSandbox(settings.mapping_limits),
            tokens=TokenCache(settings.config_cache_seconds),
            token_attempts=TokenAttempts(settings.oauth_failures_per_minute),
            executor=executor,
            invocation_retention=finished_work,
            dispatcher=dispatcher,
            delivery_retention=deliveries,
            bulk_runner=bulk,
            segment_evaluator=evaluator,
        )

    async def close(self) -> None:
        """Stop taking work, let queued writes commit, then release everything."""
        if self.invocation_retention is not None:
            await self.invocation_retention.close()
        if self.bulk_runner is not None:
            await self.bulk_runner.close()
        if self.segment_evaluator is not None:
            await self.segment_evaluator.close()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.delivery_retention is not None:
            await self.delivery_retention.close()
        if self.executor is not None:
            await self.executor.close()
        await self.retention.close()
        await self.previews.close()
        await self.pool.close()
        await self.store.close()

    def invocations_arrived(self) -> None:
        """An invocation was accepted or a wait released: the executor starts on it now, not at its next poll."""
        if self.executor is not None:
            self.executor.wake()

    def events_arrived(self) -> None:
        """Events were stored with deliveries to event or segment triggers: the dispatcher starts on them now.

        Only then: a wake costs the dispatcher a read of what is due, which every accepted webhook used to
        pay for nothing (~13 µs of CPU a request under load)."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def configuration_changed(self) -> None:
        """Every write that changes what a webhook request sees (a trigger, a flow's variables or
        publication, an armed capture) calls this, so the next request sees the change."""
        self.hook_configs.invalidate()


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
    """Whoever runs the executor dispatches events too; each wakes the other for the work it makes: the
    dispatcher the executor for the runs it starts, the executor the dispatcher for the deliveries its
    flows' events fire."""
    config = DispatcherConfig(poll_seconds=settings.executor_poll_seconds)
    dispatcher = EventDispatcher(store, runner, config, on_accepted=executor.wake, on_settled=retention.note)
    executor.on_deliveries = dispatcher.wake
    return dispatcher


def bulk_runner(store: Store, runner: MappingRunner, settings: Settings, executor: Executor) -> BulkRunner:
    """Whoever runs the executor works through bulk start tasks too (Marketo's, with their mappings and
    callbacks), waking the executor for the runs they start."""
    callbacks = MarketoCallbacks(store, CallbackConfig(allow_http=settings.marketo_allow_http_callbacks))
    return BulkRunner(store, on_started=executor.wake, marketo=(MarketoLeads(store, runner), callbacks))


def delivery_retention(store: Store, settings: Settings) -> LogRetention:
    """Settled event deliveries are kept as many per trigger as requests in the request log."""
    return LogRetention(store, EVENT_DELIVERIES, settings.request_log_retention, settings.prune_interval_seconds)
