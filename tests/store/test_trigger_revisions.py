"""A revision-checked trigger update (`If-Match`) applies only to the revision it was made against, also when
another process's change lands between its read and its write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import Store, triggers
from store.tables import flows
from store.triggers import RevisionMismatch, Trigger, insert_trigger, update_trigger

pytestmark = pytest.mark.anyio

ENV = "default"
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def made(conn: Connection) -> Trigger:
    conn.execute(
        sa.insert(flows).values(
            id="flw_1", environment_id=ENV, draft={}, draft_revision=1, created_at=AT, updated_at=AT
        )
    )
    return insert_trigger(conn, ENV, "flw_1", kind="webhook", mode="test", mapping={"kind": "passthrough"})


async def test_a_change_against_the_current_revision_applies(store: Store) -> None:
    trigger = await store.write(made)
    updated = await store.write(
        lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "live"}, if_revision_in={1})
    )
    assert updated is not None and (updated.mode, updated.revision) == ("live", 2)


async def test_a_change_against_another_revision_is_refused_with_the_trigger_as_it_is(store: Store) -> None:
    trigger = await store.write(made)
    await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "live"}))
    with pytest.raises(RevisionMismatch) as refused:
        await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "disabled"}, if_revision_in={1}))
    assert (refused.value.current.revision, refused.value.current.mode) == (2, "live")


async def test_a_change_landing_between_the_read_and_the_write_is_caught(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read saw revision 1, but revision 2 was committed before the UPDATE: the UPDATE's own revision check
    refuses it (as PostgreSQL's re-read of a row it waited for would), instead of overwriting revision 2."""
    trigger = await store.write(made)
    await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "live"}))
    reads = iter([replace(trigger, revision=1)])
    read_stored = triggers._stored
    monkeypatch.setattr(triggers, "_stored", lambda *args: next(reads, None) or read_stored(*args))
    with pytest.raises(RevisionMismatch) as refused:
        await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "disabled"}, if_revision_in={1}))
    assert refused.value.current.revision == 2
    monkeypatch.undo()
    now = await store.read(lambda conn: triggers.get_trigger(conn, ENV, trigger.id))
    assert isinstance(now, Trigger) and (now.mode, now.revision) == ("live", 2)


async def test_an_unconditional_change_landing_after_another_gets_the_next_revision(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without If-Match the change still applies, on top of the one that landed between its read and its
    write: both got revision 2 before, and a worker's config cache, keyed on the revision, kept the first."""
    trigger = await store.write(made)
    await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "live"}))
    reads = iter([replace(trigger, revision=1)])
    read_stored = triggers._stored
    monkeypatch.setattr(triggers, "_stored", lambda *args: next(reads, None) or read_stored(*args))
    updated = await store.write(lambda conn: update_trigger(conn, ENV, trigger.id, {"mode": "disabled"}))
    monkeypatch.undo()
    assert updated is not None and (updated.mode, updated.revision) == ("disabled", 3)
    now = await store.read(lambda conn: triggers.get_trigger(conn, ENV, trigger.id))
    assert isinstance(now, Trigger) and (now.mode, now.revision) == ("disabled", 3)
