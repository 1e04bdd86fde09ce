"""Mapping throughput on this machine, beside the references it is judged by.

Shared by `flowhook bench` and the pytest-benchmark suites in benchmarks/.
The floor is the same JavaScript function called on bare quickjs-ng with the
request as a JSON string and JSON back: no sandbox, no validation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import orjson

from mapper import compile_mapping, make_request

STRIPE_SOURCE = """function map(request) {
  const customer = request.body.data.object;
  return {
    targetUserIds: [customer.metadata.atomic_user_id],
    flowInvocationId: request.body.id,
    variables: {
      firstName: customer.name.split(" ")[0],
      email: customer.email,
      plan: customer.metadata.plan,
      city: customer.address.city,
    },
  };
}"""

MAPPINGS: dict[str, dict[str, Any]] = {
    "javascript": {"kind": "javascript", "source": STRIPE_SOURCE},
    "jmespath-fields": {
        "kind": "jmespath",
        "fields": {
            "targetUserIds": "body.data.object.metadata.atomic_user_id",
            "flowInvocationId": "body.id",
            "variables.email": "body.data.object.email",
            "variables.plan": "body.data.object.metadata.plan",
            "variables.city": "body.data.object.address.city",
        },
    },
    "jmespath-expression": {
        "kind": "jmespath",
        "expression": "{targetUserIds: [body.data.object.metadata.atomic_user_id], flowInvocationId: body.id,"
        " variables: {email: body.data.object.email, plan: body.data.object.metadata.plan}}",
    },
    "passthrough": {"kind": "passthrough"},
}


def stripe_event(line_items: int = 0) -> dict[str, Any]:
    """A Stripe-like `customer.created` event: ~1 KB, or larger with line items."""
    event: dict[str, Any] = {
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "object": "event",
        "api_version": "2023-10-16",
        "created": 1700000000,
        "data": {
            "object": {
                "id": "cus_OjLkNgWZxYQk3a",
                "object": "customer",
                "address": {"city": "Wellington", "country": "NZ", "line1": "1 Willis St", "postal_code": "6011"},
                "balance": 0,
                "created": 1699999999,
                "currency": "nzd",
                "email": "jenny.rosen@example.com",
                "invoice_prefix": "7F2A1B3C",
                "livemode": False,
                "metadata": {"plan": "pro", "atomic_user_id": "user-12345"},
                "name": "Jenny Rosen",
                "phone": "+64211234567",
                "preferred_locales": ["en-NZ"],
                "shipping": None,
                "tax_exempt": "none",
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_abc123", "idempotency_key": "5f2c4e0a-1b2c-4d5e-8f90-1234567890ab"},
        "type": "customer.created",
    }
    if line_items:
        event["data"]["object"]["lines"] = [
            {
                "id": f"il_{i:06d}",
                "amount": 1000 + i,
                "currency": "nzd",
                "description": f"Seat licence #{i}",
                "price": {"id": f"price_{i:04d}", "product": "prod_Flowhook", "unit_amount": 1000},
                "quantity": 1,
            }
            for i in range(line_items)
        ]
    return event


def passthrough_body() -> dict[str, Any]:
    return {"targetUserIds": ["user-12345"], "variables": {"plan": "pro"}, "flowInvocationId": "evt_1"}


def sample_request(kind: str = "javascript", size: str = "1k") -> dict[str, Any]:
    """The mapper's request object for a signed Stripe-like delivery."""
    body = passthrough_body() if kind == "passthrough" else stripe_event(line_items=200 if size == "50k" else 0)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": "t=1700000000,v1=" + "ab" * 32,
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return make_request("POST", "/hooks/h_bench", headers, "", orjson.dumps(body), "application/json")


def floor_function(source: str) -> Callable[[dict[str, Any]], Any]:
    """The same map() on bare quickjs-ng: JSON string in, JSON string out."""
    import quickjs

    context = quickjs.Context()
    context.eval(source + "\nfunction __floor(s) { return JSON.stringify(map(JSON.parse(s))); }")
    floor = context.get("__floor")
    return lambda request: orjson.loads(floor(orjson.dumps(request).decode()))


class MiniRacerFloor:
    """The same map() in V8 through mini-racer: what a V8-based peer pays.

    The object holds the V8 context, which the function handle needs alive.
    """

    def __init__(self, source: str):
        from py_mini_racer import MiniRacer

        self._context = MiniRacer()
        self._context.eval(source + "\nfunction __floor(s) { return JSON.stringify(map(JSON.parse(s))); }")
        self._floor: Any = self._context.eval("__floor")

    def __call__(self, request: dict[str, Any]) -> Any:
        return orjson.loads(self._floor(orjson.dumps(request).decode()))


def mapping_function(kind: str) -> Callable[[dict[str, Any]], Any]:
    mapping = compile_mapping(copy.deepcopy(MAPPINGS[kind]))
    return mapping.run


def interleaved_rates(
    functions: dict[str, Callable[[dict[str, Any]], Any]],
    requests: dict[str, dict[str, Any]],
    seconds: float,
    rounds: int = 10,
) -> dict[str, float]:
    """Calls per second of each function on its request, measured in turns.

    Taking turns in short slices exposes every function to the same machine
    load, so the ratios between them hold even when absolute figures drift.
    """
    calls = dict.fromkeys(functions, 0)
    spent = dict.fromkeys(functions, 0.0)
    for name, function in functions.items():
        for _ in range(200):
            function(requests[name])
    for _ in range(rounds):
        for name, function in functions.items():
            request = requests[name]
            started = time.perf_counter()
            deadline = started + seconds / rounds
            while True:
                for _ in range(100):
                    function(request)
                calls[name] += 100
                now = time.perf_counter()
                if now >= deadline:
                    spent[name] += now - started
                    break
    return {name: calls[name] / spent[name] for name in functions}


FLOOR = "floor: bare quickjs-ng"
MINI_RACER = "reference: mini-racer (V8)"


def mapping_figures(seconds: float) -> list[tuple[str, str, float]]:
    """(name, payload size, calls/s) for every kind and the two references."""
    rows: list[tuple[str, str, float]] = []
    for size in ("1k", "50k"):
        kinds = [kind for kind in MAPPINGS if not (kind == "passthrough" and size == "50k")]
        functions = {kind: mapping_function(kind) for kind in kinds}
        requests = {kind: sample_request(kind, size) for kind in kinds}
        functions[FLOOR] = floor_function(STRIPE_SOURCE)
        requests[FLOOR] = requests["javascript"]
        try:
            functions[MINI_RACER] = MiniRacerFloor(STRIPE_SOURCE)
            requests[MINI_RACER] = requests["javascript"]
        except ImportError:
            pass
        rates = interleaved_rates(functions, requests, seconds * len(functions))
        rows.extend((name, size, rate) for name, rate in rates.items())
    return rows


def run_bench(seconds: float = 1.0, include_ingest: bool = True) -> None:
    rows = mapping_figures(seconds)
    floor = {size: rate for name, size, rate in rows if name.startswith("floor")}
    print(f"{'mapping':32s} {'payload':>7s} {'per second':>12s} {'vs floor':>9s}")
    for name, size, rate in rows:
        print(f"{name:32s} {size:>7s} {rate:12,.0f} {rate / floor[size]:8.2f}x")
    if include_ingest:
        from flowhook.ingest_bench import ingest_figures

        for line in ingest_figures(seconds=max(seconds * 3, 3.0)):
            print(line)
