"""Segments: `POST/GET/PUT/DELETE /v1/{env}/segments[/{segmentId}]` and their members (docs/customers.md).

A segment body is checked whole against `schemas/segment.schema.json` and
the rules' bounds (422 `invalid_segment`, every problem with its path).
Creating or editing a segment then evaluates it over every customer of the
environment, a chunk of customers per transaction, before the answer: its
`evaluation` says how far that got and what changed (a read of the segment
shows the same). An edit follows the seed: members who no longer match exit,
members who still match stay (no event), customers who now match enter.
Should the request stop short (the process died, the request was
cancelled), the background finishes the evaluation (flows.segment_evaluation);
`complete: false` in the answer means a newer edit took over.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.segment_rules import conditions, segment_problems
from ingress.api.common import environment, json_object, not_found, query_int, read_found, services
from ingress.api.cursors import Binding
from ingress.api.problems import refuse_problems
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import segments
from store.clock import iso
from store.events import RESERVED_EVENT_NAMES

MAX_PAGE = 200


def segment_view(segment: segments.Segment, member_count: int) -> dict[str, Any]:
    evaluation = segment.evaluation
    return {
        "id": segment.id,
        "environmentId": segment.environment_id,
        "name": segment.name,
        "rules": segment.rules,
        "revision": segment.revision,
        "memberCount": member_count,
        "createdAt": iso(segment.created_at),
        "updatedAt": iso(segment.updated_at),
        "evaluation": {
            "revision": evaluation.revision,
            "customersExamined": evaluation.examined,
            "entered": evaluation.entered,
            "exited": evaluation.exited,
            "complete": evaluation.complete,
        },
    }


async def _checked_body(request: Request) -> tuple[str, dict[str, Any]]:
    """The body's name and rules, or a 422 `invalid_segment` listing every problem."""
    body = await json_object(request)
    problems = segment_problems(body)
    if not problems:
        problems = [
            {"path": f"{path}.event", "message": f"{rule['event']!r} is emitted by flows or segments, not sent"}
            for path, rule in conditions(body["rules"])
            if rule.get("event") in RESERVED_EVENT_NAMES
        ]
    refuse_problems("invalid_segment", "segment", problems)
    return body["name"], body["rules"]


async def _evaluated(request: Request, segment: segments.Segment) -> segments.Evaluation:
    """The new revision evaluated over every customer, a chunk per transaction: how far that got and what it
    did, or where it stood when a newer edit took over (`complete` false). Should another evaluator have
    moved it on meanwhile (this request was slower than the lease), it goes on from there."""
    evaluate = partial(segments.evaluate_chunk, segment_id=segment.id, revision=segment.revision, limit=segments.CHUNK)
    evaluation = segment.evaluation
    while not evaluation.complete:
        chunk = await services(request).store.write(partial(evaluate, after=evaluation.after))
        if chunk.changes.deliveries:
            services(request).events_arrived()
        if chunk.evaluation is None:
            break
        evaluation = chunk.evaluation
    return evaluation


async def _answer(request: Request, segment: segments.Segment, status: int) -> Response:
    evaluated = replace(segment, evaluation=await _evaluated(request, segment))
    counts = await services(request).store.read(lambda conn: segments.member_counts(conn, [segment.id]))
    return json_response(segment_view(evaluated, counts[segment.id]), status)


@admin_only
async def create_segment(request: Request) -> Response:
    env = await environment(request)
    name, rules = await _checked_body(request)
    try:
        segment = await services(request).store.write(lambda conn: segments.insert_segment(conn, env, name, rules))
    except segments.TooManySegments as error:
        raise ApiError(409, "segment_limit", str(error)) from None
    return await _answer(request, segment, 201)


@admin_only
async def list_segments(request: Request) -> Response:
    env = await environment(request)

    def read(conn: Connection) -> list[dict[str, Any]]:
        found = segments.list_segments(conn, env)
        counts = segments.member_counts(conn, [segment.id for segment in found])
        return [segment_view(segment, counts[segment.id]) for segment in found]

    return json_response({"data": await services(request).store.read(read)})


@admin_only
async def get_segment(request: Request) -> Response:
    env = await environment(request)
    segment_id = request.path_params["segmentId"]

    def read(conn: Connection) -> dict[str, Any] | None:
        found = segments.get_segment(conn, env, segment_id)
        return None if found is None else segment_view(found, segments.member_counts(conn, [found.id])[found.id])

    return json_response(await read_found(request, "segment", segment_id, read))


@admin_only
async def put_segment(request: Request) -> Response:
    env = await environment(request)
    segment_id = request.path_params["segmentId"]
    name, rules = await _checked_body(request)
    segment = await services(request).store.write(
        lambda conn: segments.update_segment(conn, env, segment_id, name, rules)
    )
    if segment is None:
        raise not_found("segment", segment_id)
    return await _answer(request, segment, 200)


@admin_only
async def delete_segment(request: Request) -> Response:
    env = await environment(request)
    segment_id = request.path_params["segmentId"]
    try:
        deleted = await services(request).store.write(lambda conn: segments.delete_segment(conn, env, segment_id))
    except segments.SegmentInUse as error:
        message = (
            f"segment triggers use this segment ({', '.join(error.trigger_ids)}); delete them (or archive their "
            "flows) first"
        )
        raise ApiError(409, "segment_in_use", message) from None
    if not deleted:
        raise not_found("segment", segment_id)
    return Response(status_code=204)


@admin_only
async def list_members(request: Request) -> Response:
    env = await environment(request)
    segment_id = request.path_params["segmentId"]
    cursors = Binding("segment-members", "segment", (env, segment_id))
    limit, after = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested(request)

    def read(conn: Connection) -> tuple[list[segments.Member], int | None] | None:
        if segments.get_segment(conn, env, segment_id) is None:
            return None
        return segments.list_members(conn, env, segment_id, limit=limit, after=after)

    found, next_seq = await read_found(request, "segment", segment_id, read)
    return cursors.page([{"userId": member.user_id, "enteredAt": iso(member.entered_at)} for member in found], next_seq)


routes = [
    Route("/segments", create_segment, methods=["POST"]),
    Route("/segments", list_segments, methods=["GET"]),
    Route("/segments/{segmentId}", get_segment, methods=["GET"]),
    Route("/segments/{segmentId}", put_segment, methods=["PUT"]),
    Route("/segments/{segmentId}", delete_segment, methods=["DELETE"]),
    Route("/segments/{segmentId}/members", list_members, methods=["GET"]),
]
