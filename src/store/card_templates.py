"""Card templates: an editable draft and immutable published versions.

Test runs render the current draft; live runs render the latest published
version, and the card records which one it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.ids import new_id
from store.tables import card_template_versions, card_templates


@dataclass(frozen=True)
class CardTemplate:
    id: str
    environment_id: str
    draft: dict[str, Any]  # {name, description?, definition}
    draft_revision: int
    published_version: int | None
    created_at: datetime
    updated_at: datetime


def insert_template(conn: Connection, environment_id: str, draft: dict[str, Any]) -> CardTemplate:
    now = utcnow()
    template = CardTemplate(new_id("ctp"), environment_id, draft, 1, None, now, now)
    conn.execute(sa.insert(card_templates).values(**template.__dict__))
    return template


def get_template(conn: Connection, environment_id: str, template_id: str) -> CardTemplate | None:
    query = sa.select(card_templates).where(
        card_templates.c.id == template_id, card_templates.c.environment_id == environment_id
    )
    row = (conn.execute(query)).first()
    return CardTemplate(**row._mapping) if row else None


def get_templates(conn: Connection, environment_id: str, template_ids: set[str]) -> dict[str, CardTemplate]:
    query = sa.select(card_templates).where(
        card_templates.c.id.in_(template_ids), card_templates.c.environment_id == environment_id
    )
    return {row.id: CardTemplate(**row._mapping) for row in conn.execute(query)}


def list_templates(conn: Connection, environment_id: str) -> list[CardTemplate]:
    query = (
        sa.select(card_templates)
        .where(card_templates.c.environment_id == environment_id)
        .order_by(card_templates.c.created_at, card_templates.c.id)
    )
    return [CardTemplate(**row._mapping) for row in conn.execute(query)]


def update_draft(conn: Connection, environment_id: str, template_id: str, draft: dict[str, Any]) -> CardTemplate | None:
    statement = (
        sa.update(card_templates)
        .where(card_templates.c.id == template_id, card_templates.c.environment_id == environment_id)
        .values(draft=draft, draft_revision=card_templates.c.draft_revision + 1, updated_at=utcnow())
    )
    if (conn.execute(statement)).rowcount == 0:
        return None
    return get_template(conn, environment_id, template_id)


def publish(conn: Connection, environment_id: str, template_id: str) -> CardTemplate | None:
    """Freeze the current draft as the next version and make it the published one."""
    template = get_template(conn, environment_id, template_id)
    if template is None:
        return None
    version = (template.published_version or 0) + 1
    now = utcnow()
    conn.execute(
        sa.insert(card_template_versions).values(
            template_id=template_id, version=version, draft=template.draft, published_at=now
        )
    )
    conn.execute(
        sa.update(card_templates)
        .where(card_templates.c.id == template_id)
        .values(published_version=version, updated_at=now)
    )
    return get_template(conn, environment_id, template_id)


def delete_template(conn: Connection, environment_id: str, template_id: str) -> bool:
    """Remove the template and its versions; cards already sent keep their rendered copy."""
    if get_template(conn, environment_id, template_id) is None:
        return False
    conn.execute(sa.delete(card_template_versions).where(card_template_versions.c.template_id == template_id))
    conn.execute(sa.delete(card_templates).where(card_templates.c.id == template_id))
    return True


def published_draft(conn: Connection, template_id: str, version: int) -> dict[str, Any] | None:
    query = sa.select(card_template_versions.c.draft).where(
        card_template_versions.c.template_id == template_id, card_template_versions.c.version == version
    )
    row = (conn.execute(query)).first()
    return row[0] if row else None
