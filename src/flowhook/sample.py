"""Read a sample file into the mapper's `request` object, exactly as the preview API reads its `request`.

A sample is a SPEC §2 request object (recognised by `rawBody` or `receivedAt`),
used as it is, or a raw request `{method?, path?, headers?, query?,
contentType?, body}` like a pasted sample, checked as the API checks one. A
sample as `GET …/samples` lists it is a raw request too: its `id`,
`triggerId`, `source` and `createdAt` say where it came from and are ignored.
"""

from __future__ import annotations

from typing import Any

from ingress.api.preview import is_request_object, mapping_request
from ingress.errors import ApiError

#: What a listed sample says about itself rather than about the request it holds.
SAMPLE_RECORD_FIELDS = frozenset({"id", "triggerId", "source", "createdAt"})


def request_from_sample(sample: Any) -> dict[str, Any]:
    """The mapping's `request`; a ValueError says what is wrong with the sample and where."""
    if isinstance(sample, dict) and not is_request_object(sample):
        sample = {name: value for name, value in sample.items() if name not in SAMPLE_RECORD_FIELDS}
    try:
        return mapping_request(sample, at="$")
    except ApiError as error:
        path = error.details.get("path")
        raise ValueError(f"{error.message} (at {path})" if path else error.message) from None
