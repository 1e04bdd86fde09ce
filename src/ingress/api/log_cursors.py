"""Request-log cursors, bound to the listing they page through.

A `nextCursor` carries where the next page starts (the row sequence) and a
digest of that position with the listing it was issued for: environment,
trigger and every filter (`status`, `cause`, `since`, `until`). Sent back
with any other listing, altered, or not a cursor of ours, it is a 400
`invalid_cursor` rather than a quietly wrong page. `limit` is not bound: a
client may change its page size between pages.

The digest is not keyed: it catches mistakes, not an admin forging a cursor
into a log the same token can list anyway, and every process of a cluster
can check every other's cursors without a shared secret. Cursors of earlier
versions (the bare sequence number, bound to nothing) are refused too, with
a message saying to start again from the first page.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from ingress.errors import ApiError
from store import request_log
from store.request_log import LogEntry, StatusFilter

VERSION = "log-cursor-1"
SEQ_BYTES = 8
TAG_BYTES = 12
RESTART = "list again without a cursor to start from the first page"


@dataclass(frozen=True)
class Listing:
    """One listing of the request log: its environment, trigger (None: all) and filters."""

    environment_id: str
    trigger_id: str | None
    status: StatusFilter | None
    cause: str | None
    since: datetime | None
    until: datetime | None

    def page(self, conn: Connection, limit: int, before: int | None) -> tuple[list[LogEntry], str | None]:
        """A page, newest first, below `before` (a `position`; None: from the newest) and the next page's cursor
        (None at the end)."""
        entries, next_seq = request_log.list_entries(
            conn, self.environment_id, trigger_id=self.trigger_id, status=self.status, cause=self.cause,
            since=self.since, until=self.until, limit=limit, before=before,
        )  # fmt: skip
        return entries, None if next_seq is None else self.cursor(next_seq)

    def cursor(self, seq: int) -> str:
        return urlsafe_b64encode(seq.to_bytes(SEQ_BYTES, "big") + self._tag(seq)).decode().rstrip("=")

    def position(self, cursor: str) -> int:
        """The sequence `cursor` resumes from; a 400 `invalid_cursor` unless this listing issued it as it is."""
        raw = _decoded(cursor)
        if raw is None or len(raw) != SEQ_BYTES + TAG_BYTES:
            made = "by an earlier version of flowhook" if cursor.isdigit() else "not by this API"
            raise _invalid(f"this cursor was made {made}; {RESTART}")
        seq = int.from_bytes(raw[:SEQ_BYTES], "big")
        if cursor != self.cursor(seq):
            message = "this cursor was issued for another listing (trigger, status, cause, since or until) or altered"
            raise _invalid(f"{message}; pass the filters of the page it came from, or {RESTART}")
        return seq

    def _tag(self, seq: int) -> bytes:
        status = None if self.status is None else f"{self.status.low}-{self.status.high}"
        bound = (VERSION, str(seq), self.environment_id, self.trigger_id, status, self.cause, self.since, self.until)
        text = "\x1f".join("" if part is None else _text(part) for part in bound)
        return hashlib.sha256(text.encode()).digest()[:TAG_BYTES]


def _text(part: str | datetime) -> str:
    """A time as one instant, however it was written (`Z`, `+00:00`, another zone)."""
    return part.astimezone(UTC).isoformat() if isinstance(part, datetime) else part


def _decoded(cursor: str) -> bytes | None:
    try:
        return urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (UnicodeEncodeError, binascii.Error):
        return None


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_cursor", message)
