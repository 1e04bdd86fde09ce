"""Page cursors bound to the listing they page through.

A `nextCursor` carries where the next page starts (a row sequence) and a
digest of that position with the listing it was issued for: which listing
(the request log, a user's cards, analytics events), the environment, the
ids in the path and every filter that decides which rows are listed. Sent
back with any other listing, altered, or not a cursor of ours, it is a 400
`invalid_cursor` rather than a quietly wrong page. `limit` is not bound: a
client may change its page size between pages.

The digest is not keyed: it catches mistakes, not an admin forging a cursor
into a listing the same token can read anyway, and every process of a
cluster can check every other's cursors without a shared secret. Cursors of
earlier versions (the bare sequence number, bound to nothing) are refused
too, with a message saying to start again from the first page.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingress.errors import ApiError
from ingress.jsonio import json_response

Part = str | datetime | None
POSITION_BYTES = 8
MAX_POSITION = 2**63 - 1  # a row sequence: a 64-bit integer in both stores
TAG_BYTES = 12
RESTART = "list again without a cursor to start from the first page"


@dataclass(frozen=True)
class Binding:
    """One listing, as its cursors are bound to it.

    `listing` names the listing, so that two listings with equal parts
    still refuse each other's cursors; `what` is what is bound, as an error
    names it ("trigger, status, cause, since or until"); `parts` are their
    values, the environment first.
    """

    listing: str
    what: str
    parts: tuple[Part, ...]

    def page(self, data: list[dict[str, Any]], position: int | None) -> Response:
        """A page of this listing: its items, and the cursor of the page that starts at `position` (None:
        this was the last)."""
        return json_response({"data": data, "nextCursor": self.next_cursor(position)})

    def next_cursor(self, position: int | None) -> str | None:
        """The `nextCursor` of a page whose next one starts at `position` (None: the last page)."""
        return None if position is None else self._cursor(position)

    def _cursor(self, position: int) -> str:
        return urlsafe_b64encode(position.to_bytes(POSITION_BYTES, "big") + self._tag(position)).decode().rstrip("=")

    def requested(self, request: Request) -> int | None:
        """Where the request's `cursor` resumes (None without one: the first page); a 400 `invalid_cursor`
        unless this listing issued it as it is."""
        cursor = request.query_params.get("cursor") or None
        return None if cursor is None else self._position(cursor)

    def _position(self, cursor: str) -> int:
        raw = _decoded(cursor)
        if raw is None or len(raw) != POSITION_BYTES + TAG_BYTES:
            made = "by an earlier version of flowhook" if cursor.isascii() and cursor.isdigit() else "not by this API"
            raise _invalid(f"this cursor was made {made}; {RESTART}")
        position = int.from_bytes(raw[:POSITION_BYTES], "big")
        if position > MAX_POSITION:  # never issued; the digest is public, so one could be made (a 500 in the store)
            raise _invalid(f"this cursor was made not by this API; {RESTART}")
        if cursor != self._cursor(position):
            message = f"this cursor was issued for another listing ({self.what}) or altered"
            raise _invalid(f"{message}; pass the filters of the page it came from, or {RESTART}")
        return position

    def _tag(self, position: int) -> bytes:
        """A JSON array, so that no values can run into each other's places."""
        text = json.dumps([self.listing, position, *(_text(part) for part in self.parts)])
        return hashlib.sha256(text.encode()).digest()[:TAG_BYTES]


def _text(part: Part) -> str | None:
    """A time as one instant, however it was written (`Z`, `+00:00`, another zone)."""
    return part.astimezone(UTC).isoformat() if isinstance(part, datetime) else part


def _decoded(cursor: str) -> bytes | None:
    try:
        return urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (UnicodeEncodeError, binascii.Error):
        return None


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_cursor", message)
