"""`flowhook serve`: the app under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ingress.app import create_app
from ingress.auth import admin_token_hash
from ingress.metrics import MULTIPROCESS_DIRECTORY, prepare_directory
from ingress.settings import Settings
from ingress.slow_clients import SlowClientProtocol
from ingress.supervision import SUPERVISOR_PID, end_with_supervisor
from store import Store, database_url

#: How uvicorn runs the app (with `uvicorn_options`). `proxy_headers` is off: the client address is
#: decided by the app alone (FLOWHOOK_TRUSTED_PROXIES), never by uvicorn
#: trusting X-Forwarded-For from 127.0.0.1. The request log replaces the access log.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "proxy_headers": False,
    "access_log": False,
    "lifespan": "on",
    "timeout_graceful_shutdown": 10,
}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """`UVICORN_OPTIONS` with httptools given the deadlines for request heads and for taking responses
    (ingress.slow_clients)."""
    factory = SlowClientProtocol.factory(settings.header_timeout_seconds, settings.write_timeout_seconds)
    return UVICORN_OPTIONS | {"http": factory}


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    data_dir: str | Path = "flowhook-data",
    database: str | None = None,
    workers: int = 1,
) -> None:
    """Run the service until SIGINT/SIGTERM.

    Migrations and first-start set-up (the `default` environment, the admin
    token, printed once) happen here before any worker starts, so N workers
    never race to create them. Other settings come from FLOWHOOK_* variables.
    """
    settings = Settings.from_env(data_dir=Path(data_dir), database=database)
    asyncio.run(_prepare(settings))
    os.environ.update(settings.to_env())
    if workers > 1:  # the processes count into one directory, so /metrics covers them all (ingress.metrics)
        prepare_directory(settings.data_dir / "metrics")
        os.environ[MULTIPROCESS_DIRECTORY] = str(settings.data_dir / "metrics")
        os.environ[SUPERVISOR_PID] = str(os.getpid())  # uvicorn's supervisor is this process (ingress.supervision)
    uvicorn.run(
        "ingress.serve:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **uvicorn_options(settings),
    )


async def _prepare(settings: Settings) -> None:
    store = await Store.open(database_url(settings.database, settings.data_dir))
    try:
        await admin_token_hash(store, settings.admin_token)
    finally:
        await store.close()


def app_from_environment() -> Starlette:
    """uvicorn's factory, in each worker process: the settings `serve` put in the environment.

    Everything built so far (modules, SQLAlchemy's metadata, the app) lives
    as long as the process, so it is moved out of the garbage collector's
    sight: under load a full collection ran a few times a second and walked
    all of it, 20-35 ms each with the event loop stopped, which set the p99.
    And the youngest generation is collected after 10,000 net allocations,
    not 700: a request's objects die by reference count (a 10 s load left
    ~2,600 objects for the collector in 3,900 passes), and the passes cost ~3%
    of the CPU.
    """
    if SUPERVISOR_PID in os.environ:
        end_with_supervisor(int(os.environ[SUPERVISOR_PID]))
    app = create_app(Settings.from_env())
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    return app
