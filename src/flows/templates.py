"""Which card template version a send-card step renders: the draft for test runs, the latest published for live ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from store.card_templates import CardTemplate, get_template, published_draft


class StepFailed(Exception):
    """A step could not run (yet); the executor retries it with backoff, then gives up.

    `permanent`: running it again cannot help (it depends only on the instance's own
    variables and outcomes), so the instance fails at once instead of after every retry.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ResolvedTemplate:
    id: str
    version: int | None  # None: the draft (test runs)
    definition: dict[str, Any]


class TemplateSource:
    """Looks templates up once per batch; published versions, being immutable, are cached for good."""

    def __init__(self, conn: Connection, published: dict[tuple[str, int], dict[str, Any]]) -> None:
        self._conn = conn
        self._published = published
        self._templates: dict[tuple[str, str], CardTemplate | None] = {}

    def resolve(self, environment_id: str, template_id: str, *, live: bool) -> ResolvedTemplate:
        key = (environment_id, template_id)
        if key not in self._templates:
            self._templates[key] = get_template(self._conn, environment_id, template_id)
        template = self._templates[key]
        if template is None:
            raise StepFailed(f"card template {template_id!r} does not exist")
        if not live:
            return ResolvedTemplate(template_id, None, template.draft["definition"])
        version = template.published_version
        if version is None:
            raise StepFailed(f"card template {template_id!r} has no published version")
        if (template_id, version) not in self._published:
            draft = published_draft(self._conn, template_id, version)
            if draft is None:
                raise StepFailed(f"card template {template_id!r} version {version} is missing")
            self._published[(template_id, version)] = draft
        return ResolvedTemplate(template_id, version, self._published[(template_id, version)]["definition"])
