"""Optimistic concurrency for a trigger: its revision as an `ETag`, and `If-Match` on a change (RFC 9110 §13.1.1).

Two admins (or the editor and a script) who both read revision 3 and then
both save would otherwise silently overwrite each other. A client that sends
back the `ETag` it read as `If-Match` gets a 412 `precondition_failed`
instead, with the current revision, when the trigger changed meanwhile.
Without the header a change applies as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from ingress.api.common import decimal_digits
from ingress.errors import ApiError

#: An entity-tag: optionally weak (`W/`), then a quoted string of anything but quotes, spaces and controls.
_TAG = r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"'
_TAG_LIST = re.compile(rf"\s*{_TAG}(?:\s*,\s*{_TAG})*\s*")
_TAGS = re.compile(_TAG)


def etag(revision: int) -> dict[str, str]:
    """The `ETag` header of a trigger at `revision`: strong, since the revision names exactly one state."""
    return {"ETag": f'"{revision}"'}


@dataclass(frozen=True)
class IfMatch:
    """What an `If-Match` header accepts: the revisions its strong tags name (`*` is no condition at all)."""

    revisions: frozenset[int]
    weak: bool  # it holds a weak tag, which never matches: a proxy that compresses may have weakened the ETag

    def holds(self, revision: int) -> bool:
        return revision in self.revisions


def if_match(request: Request) -> IfMatch | None:
    """The request's `If-Match`; None without one, or for `*` (the trigger exists, or it was a 404 already).

    Weak tags (`W/"3"`) never match: `If-Match` compares strongly. A value that is not a list of quoted tags
    (`3`, `'3'`) is a 400 rather than a condition that could never hold, so a client finds its mistake at once.
    """
    values = request.headers.getlist("if-match")
    if not values:
        return None
    value = ", ".join(values)
    if value.strip() == "*":
        return None
    if _TAG_LIST.fullmatch(value) is None:
        message = 'If-Match must be "*" or entity tags as the ETag header gives them, quotes included: "3"'
        raise ApiError(400, "invalid_if_match", message)
    tags = _TAGS.findall(value)
    strong = {int(text) for weak, text in tags if not weak and decimal_digits(text)}
    return IfMatch(frozenset(strong), weak=any(weak for weak, _ in tags))


def precondition_failed(what: str, revision: int, condition: IfMatch) -> ApiError:
    """The 412 for a change made against another revision than `revision`, the current one (also as `ETag`)."""
    message = (
        f"{what} changed since you read it: it is at revision {revision}. Read it again (its ETag is "
        f'"{revision}") and reapply your change, or send it without If-Match to overwrite'
    )
    if condition.weak:
        message += '; a weak tag (W/"…") never matches: send the revision as a strong tag, "3"'
    return ApiError(412, "precondition_failed", message, headers=etag(revision), revision=revision)
