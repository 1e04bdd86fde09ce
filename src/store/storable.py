"""Text a sender controls, as both stores can keep it.

PostgreSQL's text type cannot hold NUL (U+0000); SQLite's can. A webhook's
path, body or a mapping's error message may carry one, and storing it as
sent failed the request log's write on PostgreSQL (a 503, and no entry), and a
Marketo lead's skip reason quoting its mapping's error failed the whole task.
Such text is kept with each NUL as U+FFFD, the replacement character the log
already uses for bytes a charset cannot decode, on both stores alike.
"""

from __future__ import annotations

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """`text` with each NUL replaced (the same string when it has none)."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text
