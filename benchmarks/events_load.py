"""Load script for the events API: accepted `POST /v1/{env}/events` per second, latency and CPU per event
of `flowhook serve`, beside the bare Starlette handler in the same run; then how long the event
dispatcher and the executor take to turn the last deliveries into finished runs.

One event per request, an OAuth2 access token with the `events` role, one live event trigger (the
default JMESPath mapping) on a published empty flow. The server's CPU covers the API, the dispatcher
and the executor, which all run during the load.

    python benchmarks/events_load.py --seconds 8 --connections 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa

from flowhook.ingest_bench import ADMIN_TOKEN, free_port, load, load_bare, running, table
from store.engine import database_url

EVENT = {"eventName": "plan-upgraded", "endUserId": "user-7", "properties": {"plan": "Pro", "seats": 12}}
FLOW = {
    "name": "events load",
    "variables": [{"name": "plan", "type": "string"}, {"name": "seats", "type": "number"}],
    "steps": [],
}


def access_token(base: str) -> str:
    """A published flow with a live event trigger, and a token that may send events."""
    with httpx.Client(base_url=f"{base}/v1/default", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
        flow = api.post("/action-flows", json=FLOW).raise_for_status().json()
        api.post(f"/action-flows/{flow['id']}/publish").raise_for_status()
        trigger = {"type": "event", "eventName": EVENT["eventName"], "mode": "live"}
        api.post(f"/action-flows/{flow['id']}/triggers", json=trigger).raise_for_status()
        credential = api.post("/credentials", json={"name": "load", "roles": ["events"]}).raise_for_status().json()
    auth = (credential["clientId"], credential["clientSecret"])
    token = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
    return str(token.raise_for_status().json()["access_token"])


def drain_seconds(data_dir: str) -> float:
    """How long until no delivery and no invocation is pending any more."""
    engine = sa.create_engine(database_url(None, Path(data_dir)))
    pending = sa.text(
        "SELECT (SELECT count(*) FROM event_deliveries WHERE status = 'pending')"
        " + (SELECT count(*) FROM invocations WHERE status = 'pending')"
    )
    started = time.perf_counter()
    try:
        while True:
            with engine.connect() as conn:
                if conn.execute(pending).scalar_one() == 0:
                    return time.perf_counter() - started
            time.sleep(0.05)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    body = orjson.dumps(EVENT)
    bare = load_bare(body, {"Content-Type": "application/json"}, args.seconds, args.connections)
    with tempfile.TemporaryDirectory(prefix="flowhook-bench-") as data_dir:
        port = free_port()
        env = {**os.environ, "FLOWHOOK_ADMIN_TOKEN": ADMIN_TOKEN}
        serve = [sys.executable, "-m", "flowhook", "serve", "--port", str(port), "--data-dir", data_dir]
        with running(serve, f"http://127.0.0.1:{port}/healthz", env=env) as pid:
            base = f"http://127.0.0.1:{port}"
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {access_token(base)}"}
            events = load(
                "POST /v1/default/events",
                f"{base}/v1/default/events",
                body,
                headers,
                args.seconds,
                args.connections,
                pid,
            )
            drained = drain_seconds(data_dir)
    print("\n".join(table([bare, events])))
    print(f"every delivery settled and every run finished {drained:.1f} s after the load ended")


if __name__ == "__main__":
    main()
