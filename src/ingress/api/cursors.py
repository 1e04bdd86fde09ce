"""Page cursors bound to the listing they page through.

A `nextCursor` carries where the next page starts (a row sequence, or for a
listing whose rows share no sequence the last row's time and id) and a
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
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingress.api.queries import given
from ingress.errors import ApiError
from ingress.jsonio import json_response

Part = str | datetime | None
#: Where a listing ordered by time, then id, resumes: the last row's time and id.
TimeKey = tuple[datetime, str]
POSITION_BYTES = 8
MAX_POSITION = 2**63 - 1  # a row sequence: a 64-bit integer in both stores
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // MICROSECOND
TAG_BYTES = 12
#: Every cursor is base64url without padding, at least a position and its tag long (OpenAPI's `cursor`).
ALPHABET_PATTERN = "^[A-Za-z0-9_-]+$"
SHORTEST = -(-(POSITION_BYTES + TAG_BYTES) * 4 // 3)
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

    def page(self, data: list[dict[str, Any]], position: int | TimeKey | None) -> Response:
        """A page of this listing: its items, and the cursor of the page that starts at `position` (None:
        this was the last)."""
        return json_response({"data": data, "nextCursor": self.next_cursor(position)})

    def next_cursor(self, position: int | TimeKey | None) -> str | None:
        """The `nextCursor` of a page whose next one starts at `position` (None: the last page): a row
        sequence, or the last row's time and id for a listing ordered by them."""
        if position is None:
            return None
        return self._cursor(position) if isinstance(position, int) else self._key_cursor(position)

    def _cursor(self, position: int) -> str:
        return _encoded(position.to_bytes(POSITION_BYTES, "big") + self._tag(position))

    def _key_cursor(self, key: TimeKey) -> str:
        """The time as microseconds since the epoch, as a position is stored, then the id."""
        at, row_id = key
        micros = (at - EPOCH) // MICROSECOND
        return _encoded(micros.to_bytes(POSITION_BYTES, "big") + row_id.encode() + self._tag([micros, row_id]))

    def requested(self, request: Request) -> int | None:
        """Where the request's `cursor` resumes (None without one: the first page); a 400 `invalid_cursor`
        unless this listing issued it as it is."""
        cursor = given(request, "cursor")
        return None if cursor is None else self._position(cursor)

    def requested_key(self, request: Request) -> TimeKey | None:
        """As `requested`, for a listing whose cursors `next_key_cursor` issued."""
        cursor = given(request, "cursor")
        return None if cursor is None else self._key(cursor)

    def _position(self, cursor: str) -> int:
        raw = _decoded(cursor)
        if raw is None or len(raw) != POSITION_BYTES + TAG_BYTES:
            raise _made_elsewhere(cursor)
        position = int.from_bytes(raw[:POSITION_BYTES], "big")
        if position > MAX_POSITION:  # never issued; the digest is public, so one could be made (a 500 in the store)
            raise _invalid(f"this cursor was made not by this API; {RESTART}")
        self._refuse_unless(cursor == self._cursor(position))
        return position

    def _key(self, cursor: str) -> TimeKey:
        raw = _decoded(cursor)
        if raw is None or len(raw) < POSITION_BYTES + TAG_BYTES:
            raise _made_elsewhere(cursor)
        micros = int.from_bytes(raw[:POSITION_BYTES], "big")
        try:
            row_id = raw[POSITION_BYTES:-TAG_BYTES].decode()
        except UnicodeDecodeError:
            row_id = "\x00"
        if micros > MAX_MICROS or "\x00" in row_id:  # never issued (PostgreSQL cannot compare a NUL: a 500)
            raise _invalid(f"this cursor was made not by this API; {RESTART}")
        key = (EPOCH + micros * MICROSECOND, row_id)
        self._refuse_unless(cursor == self._key_cursor(key))
        return key

    def _refuse_unless(self, issued_here: bool) -> None:
        if not issued_here:
            message = f"this cursor was issued for another listing ({self.what}) or altered"
            raise _invalid(f"{message}; pass the filters of the page it came from, or {RESTART}")

    def _tag(self, position: int | list[int | str]) -> bytes:
        """A JSON array, so that no values can run into each other's places."""
        text = json.dumps([self.listing, position, *(_text(part) for part in self.parts)])
        return hashlib.sha256(text.encode()).digest()[:TAG_BYTES]


def _text(part: Part) -> str | None:
    """A time as one instant, however it was written (`Z`, `+00:00`, another zone)."""
    return part.astimezone(UTC).isoformat() if isinstance(part, datetime) else part


def _encoded(raw: bytes) -> str:
    return urlsafe_b64encode(raw).decode().rstrip("=")


def _decoded(cursor: str) -> bytes | None:
    try:
        return urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (UnicodeEncodeError, binascii.Error):
        return None


def _made_elsewhere(cursor: str) -> ApiError:
    """A cursor no listing of this version issued: an earlier version's bare number, or not ours at all."""
    made = "by an earlier version of flowhook" if cursor.isascii() and cursor.isdigit() else "not by this API"
    return _invalid(f"this cursor was made {made}; {RESTART}")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_cursor", message)
