"""Samples: example requests a mapping is written against (captured or pasted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.ids import new_id
from store.request_log import LogEntry, insert_entries
from store.tables import samples, triggers


@dataclass(frozen=True)
class Sample:
    id: str
    trigger_id: str
    source: str  # "captured" | "pasted"
    method: str
    path: str
    headers: dict[str, str]
    query: str
    content_type: str | None
    body: str
    created_at: datetime
    seq: int | None = None


def new_sample(
    trigger_id: str,
    source: str,
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    query: str,
    content_type: str | None,
    body: str,
) -> Sample:
    return Sample(new_id("smp"), trigger_id, source, method, path, headers, query, content_type, body, utcnow())


def insert_sample(conn: Connection, sample: Sample, *, keep: int) -> None:
    """Store a sample and drop the trigger's oldest beyond `keep`."""
    row = dict(sample.__dict__)
    del row["seq"]
    conn.execute(sa.insert(samples).values(**row))
    boundary = (
        sa.select(samples.c.seq)
        .where(samples.c.trigger_id == sample.trigger_id)
        .order_by(samples.c.seq.desc())
        .limit(1)
        .offset(keep)
        .scalar_subquery()
    )
    conn.execute(sa.delete(samples).where(samples.c.trigger_id == sample.trigger_id, samples.c.seq <= boundary))


def list_samples(conn: Connection, trigger_id: str) -> list[Sample]:
    query = sa.select(samples).where(samples.c.trigger_id == trigger_id).order_by(samples.c.seq.desc())
    return [Sample(**row._mapping) for row in conn.execute(query)]


def delete_sample(conn: Connection, trigger_id: str, sample_id: str) -> bool:
    """Remove one of the trigger's samples; whether it had it."""
    statement = sa.delete(samples).where(samples.c.id == sample_id, samples.c.trigger_id == trigger_id)
    return conn.execute(statement).rowcount == 1


def get_sample(conn: Connection, environment_id: str, sample_id: str) -> Sample | None:
    query = (
        sa.select(samples)
        .join(triggers, triggers.c.id == samples.c.trigger_id)
        .where(samples.c.id == sample_id, triggers.c.environment_id == environment_id)
    )
    row = conn.execute(query).first()
    return Sample(**row._mapping) if row else None


@dataclass
class Capture:
    """A request that will become a sample if its trigger is still armed."""

    sample: Sample
    log: LogEntry
    keep: int


def capture_batch(conn: Connection, captures: list[Capture]) -> list[bool]:
    """A `store.writer` batch: disarm-and-save, so exactly one request is captured per arming.

    Returns, per request, whether it was captured (False: someone else
    already took the armed slot, or the arming lapsed, and the request goes
    on as a normal one). A lapsed arming is disarmed here as store.triggers
    reads it (the next revision, updated when it lapsed), so that the row
    says what is read.
    """
    outcomes: list[bool] = []
    for capture in captures:
        now = utcnow()
        armed = sa.update(triggers).where(triggers.c.id == capture.sample.trigger_id, triggers.c.capture_armed)
        disarm = armed.values(capture_armed=False, capture_expires_at=None, revision=triggers.c.revision + 1)
        taken = disarm.where(triggers.c.capture_expires_at > now).values(updated_at=now)
        captured = conn.execute(taken).rowcount == 1
        if captured:
            insert_sample(conn, capture.sample, keep=capture.keep)
            insert_entries(conn, [capture.log])
        else:  # lapsed, if still armed
            lapsed_at = sa.func.coalesce(triggers.c.capture_expires_at, triggers.c.updated_at)
            conn.execute(disarm.values(updated_at=lapsed_at))
        outcomes.append(captured)
    return outcomes
