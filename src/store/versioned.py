"""Documents with an editable draft and immutable published versions.

Flows and card templates work the same way: the draft is edited in place
(each edit bumps `draft_revision`), publishing freezes the draft as the next
version, test runs use the draft and live runs a published version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.ids import new_id


@dataclass(frozen=True)
class Versioned:
    id: str
    environment_id: str
    draft: dict[str, Any]
    draft_revision: int
    published_version: int | None
    created_at: datetime
    updated_at: datetime


D = TypeVar("D", bound=Versioned)


class VersionedDocuments(Generic[D]):
    """Queries over one documents table and its versions table.

    `key` names the versions table's column pointing at the document and
    `content` the column holding the frozen draft; `document` is the record a
    row becomes (a `Versioned`, or one with the table's further columns).
    """

    def __init__(
        self, table: sa.Table, versions: sa.Table, *, key: str, content: str, id_prefix: str, document: type[D]
    ):
        self._table = table
        self._document = document
        self._versions = versions
        self._key = versions.c[key]
        self._content = versions.c[content]
        self._id_prefix = id_prefix

    def _scoped(self, environment_id: str) -> sa.ColumnElement[bool]:
        return self._table.c.environment_id == environment_id

    def insert(self, conn: Connection, environment_id: str, draft: dict[str, Any]) -> D:
        now = utcnow()
        document = self._document(new_id(self._id_prefix), environment_id, draft, 1, None, now, now)
        conn.execute(sa.insert(self._table).values(**document.__dict__))
        return document

    def get(self, conn: Connection, environment_id: str, document_id: str) -> D | None:
        query = sa.select(self._table).where(self._table.c.id == document_id, self._scoped(environment_id))
        row = conn.execute(query).first()
        return self._document(**row._mapping) if row else None

    def get_many(self, conn: Connection, environment_id: str, document_ids: set[str]) -> dict[str, D]:
        query = sa.select(self._table).where(self._table.c.id.in_(document_ids), self._scoped(environment_id))
        return {row.id: self._document(**row._mapping) for row in conn.execute(query)}

    def list(self, conn: Connection, environment_id: str, *where: sa.ColumnElement[bool]) -> list[D]:
        """The environment's documents (those `where` also holds for), oldest first."""
        query = (
            sa.select(self._table)
            .where(self._scoped(environment_id), *where)
            .order_by(self._table.c.created_at, self._table.c.id)
        )
        return [self._document(**row._mapping) for row in conn.execute(query)]

    def update_draft(self, conn: Connection, environment_id: str, document_id: str, draft: dict[str, Any]) -> D | None:
        statement = (
            sa.update(self._table)
            .where(self._table.c.id == document_id, self._scoped(environment_id))
            .values(draft=draft, draft_revision=self._table.c.draft_revision + 1, updated_at=utcnow())
        )
        if conn.execute(statement).rowcount == 0:
            return None
        return self.get(conn, environment_id, document_id)

    def publish(self, conn: Connection, environment_id: str, document_id: str) -> D | None:
        """Freeze the current draft as the next version and make it the published one."""
        document = self.get(conn, environment_id, document_id)
        if document is None:
            return None
        version = (document.published_version or 0) + 1
        now = utcnow()
        conn.execute(
            sa.insert(self._versions).values(
                {
                    self._key: document_id,
                    self._versions.c.version: version,
                    self._content: document.draft,
                    self._versions.c.published_at: now,
                }
            )
        )
        conn.execute(
            sa.update(self._table)
            .where(self._table.c.id == document_id)
            .values(published_version=version, updated_at=now)
        )
        return self.get(conn, environment_id, document_id)

    def published(self, conn: Connection, document_id: str, version: int) -> dict[str, Any] | None:
        query = sa.select(self._content).where(self._key == document_id, self._versions.c.version == version)
        row = conn.execute(query).first()
        return row[0] if row else None

    def delete(self, conn: Connection, environment_id: str, document_id: str) -> bool:
        """Remove the document and its versions."""
        if self.get(conn, environment_id, document_id) is None:
            return False
        conn.execute(sa.delete(self._versions).where(self._key == document_id))
        conn.execute(sa.delete(self._table).where(self._table.c.id == document_id))
        return True
