"""Customer profiles: `PUT/GET/DELETE /v1/{env}/customers/{userId}` and the paged listing (docs/customers.md).

A profile is a flat object of attributes (JSON scalars, or arrays of them),
bounded in count and size. Writing one replaces its attributes and evaluates
it against every segment of the environment in the same transaction;
deleting one makes it exit every segment it was in. Either way the entries
and exits are analytics events, and the segment triggers they fire are
delivered by the event dispatcher.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.problems import Problem
from ingress.api.common import environment, json_object, not_found, query_int, read_found, refuse_unknown, services
from ingress.api.cursors import Binding
from ingress.api.problems import refuse_problems
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import customers, segments
from store.clock import iso

MAX_USER_ID = 256  # as an event's endUserId
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_NAME = 128
MAX_ARRAY_ITEMS = 100
MAX_ATTRIBUTES_BYTES = 64 * 1024  # the attributes as compact JSON
MAX_PAGE = 200


def customer_view(customer: customers.Customer, segment_ids: list[str]) -> dict[str, Any]:
    return {
        "userId": customer.user_id,
        "environmentId": customer.environment_id,
        "attributes": customer.attributes,
        "segmentIds": segment_ids,
        "createdAt": iso(customer.created_at),
        "updatedAt": iso(customer.updated_at),
    }


def attribute_problems(attributes: Any) -> list[Problem]:
    """Every problem of a profile's attributes, with its path."""
    if not isinstance(attributes, dict):
        return [{"path": "$.attributes", "message": "must be an object of attribute names to values"}]
    problems: list[Problem] = []
    if len(attributes) > MAX_ATTRIBUTES:
        problems.append(
            {"path": "$.attributes", "message": f"has {len(attributes)} attributes, more than {MAX_ATTRIBUTES}"}
        )
    for name, value in attributes.items():
        path = f"$.attributes[{orjson.dumps(name).decode()}]"
        if not 1 <= len(name) <= MAX_ATTRIBUTE_NAME:
            problems.append({"path": path, "message": f"a name must have 1 to {MAX_ATTRIBUTE_NAME} characters"})
        if isinstance(value, list):
            if len(value) > MAX_ARRAY_ITEMS:
                problems.append({"path": path, "message": f"has {len(value)} items, more than {MAX_ARRAY_ITEMS}"})
            problems += [
                {"path": f"{path}[{index}]", "message": "must be a string, number, boolean or null"}
                for index, item in enumerate(value)
                if isinstance(item, dict | list)
            ]
        elif isinstance(value, dict):
            problems.append({"path": path, "message": "must be a string, number, boolean, null or an array of them"})
    if not problems and len(orjson.dumps(attributes)) > MAX_ATTRIBUTES_BYTES:
        problems.append({"path": "$.attributes", "message": f"exceeds {MAX_ATTRIBUTES_BYTES} bytes as JSON"})
    return problems


def _user_id(request: Request) -> str:
    user_id: str = request.path_params["userId"]
    if not 1 <= len(user_id) <= MAX_USER_ID:
        raise ApiError(400, "invalid_parameter", f"a user id has 1 to {MAX_USER_ID} characters")
    return user_id


@admin_only
async def put_customer(request: Request) -> Response:
    env = await environment(request)
    user_id = _user_id(request)
    data = await json_object(request)
    refuse_unknown(data, {"attributes"})
    if "attributes" not in data:
        raise ApiError(422, "invalid_customer", "attributes is required (an object; {} for none)", path="$.attributes")
    refuse_problems("invalid_customer", "profile", attribute_problems(data["attributes"]))

    def write(conn: Connection) -> tuple[customers.Written, list[str]]:
        written = customers.put_customer(conn, env, user_id, data["attributes"])
        return written, segments.memberships(conn, env, [user_id])[user_id]

    written, segment_ids = await services(request).store.write(write)
    if written.changes.deliveries:
        services(request).events_arrived()
    return json_response(customer_view(written.customer, segment_ids), 201 if written.created else 200)


@admin_only
async def get_customer(request: Request) -> Response:
    env = await environment(request)
    user_id = _user_id(request)

    def read(conn: Connection) -> tuple[customers.Customer, list[str]] | None:
        found = customers.get_customer(conn, env, user_id)
        return None if found is None else (found, segments.memberships(conn, env, [user_id])[user_id])

    customer, segment_ids = await read_found(request, "customer", user_id, read)
    return json_response(customer_view(customer, segment_ids))


@admin_only
async def delete_customer(request: Request) -> Response:
    env = await environment(request)
    user_id = _user_id(request)
    changes = await services(request).store.write(lambda conn: customers.delete_customer(conn, env, user_id))
    if changes is None:
        raise not_found("customer", user_id)
    if changes.deliveries:
        services(request).events_arrived()
    return Response(status_code=204)


@admin_only
async def list_customers(request: Request) -> Response:
    env = await environment(request)
    cursors = Binding("customers", "environment", (env,))
    limit, after = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested(request)

    def read(conn: Connection) -> tuple[list[customers.Customer], int | None, dict[str, list[str]]]:
        found, next_seq = customers.list_customers(conn, env, limit=limit, after=after)
        return found, next_seq, segments.memberships(conn, env, [customer.user_id for customer in found])

    found, next_seq, member_of = await services(request).store.read(read)
    return cursors.page([customer_view(customer, member_of[customer.user_id]) for customer in found], next_seq)


routes = [
    Route("/customers", list_customers, methods=["GET"]),
    Route("/customers/{userId:path}", put_customer, methods=["PUT"]),
    Route("/customers/{userId:path}", get_customer, methods=["GET"]),
    Route("/customers/{userId:path}", delete_customer, methods=["DELETE"]),
]
