"""Card templates: an editable draft and immutable published versions.

Test runs render the current draft; live runs render the latest published
version, and the card records which one it was.
"""

from __future__ import annotations

from store.tables import card_template_versions, card_templates
from store.versioned import Versioned, VersionedDocuments

CardTemplate = Versioned

_TEMPLATES = VersionedDocuments(
    card_templates, card_template_versions, key="template_id", content="draft", id_prefix="ctp", document=Versioned
)

insert_template = _TEMPLATES.insert
get_template = _TEMPLATES.get
get_templates = _TEMPLATES.get_many
list_templates = _TEMPLATES.list
update_draft = _TEMPLATES.update_draft
publish = _TEMPLATES.publish
published_draft = _TEMPLATES.published
# Cards already sent keep their rendered copy.
delete_template = _TEMPLATES.delete
