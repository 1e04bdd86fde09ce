"""Read a sample file into the mapper's `request` object.

A sample is either a request object as the mapper receives it (SPEC §2,
recognised by `rawBody` or `contentType`) or a raw captured request
`{method, headers, query, body}` whose body is JSON data or text.
"""

from __future__ import annotations

from typing import Any

import orjson

from mapper import make_request
from mapper.request import body_bytes


def request_from_sample(sample: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(sample, dict):
        raise ValueError("a sample must be a JSON object")
    if "rawBody" in sample or "contentType" in sample:
        return sample
    headers = {str(k): str(v) for k, v in (sample.get("headers") or {}).items()}
    body = sample.get("body")
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None and not isinstance(body, str) and body is not None:
        content_type = "application/json"
        headers["content-type"] = content_type
    raw = body_bytes(body, content_type) if isinstance(body, str) else b"" if body is None else orjson.dumps(body)
    query = sample.get("query") or {}
    if isinstance(query, dict):
        query = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    return make_request(
        sample.get("method", "POST"),
        sample.get("path", "/"),
        headers,
        query,
        raw,
        content_type,
        sample.get("receivedAt"),
    )
