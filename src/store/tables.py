"""The relational schema, as SQLAlchemy Core tables.

Portable types only (text ids, JSON, integer sequences, UTC timestamps) so the
same queries run on SQLite and PostgreSQL. Migrations (store.migrations)
create these tables; this module is their single description.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite keeps no zone, so values are normalised to UTC on the way in and
    marked UTC on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQL NULL for a Python None (plain JSON would store the JSON literal `null`).
Json = sa.JSON(none_as_null=True)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Sequence = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
)

service_state = sa.Table(
    "service_state",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("settings", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, sa.ForeignKey("environments.id"), nullable=False),
    sa.Column("draft", Json, nullable=False),
    sa.Column("draft_revision", sa.Integer, nullable=False),
    sa.Column("published_version", sa.Integer, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("archived_at", UtcDateTime, nullable=True),  # archived: it starts nothing new (migration 15)
    sa.Index("ix_flows_environment_created", "environment_id", "created_at", "id"),  # API triggers (migration 12)
)

flow_versions = sa.Table(
    "flow_versions",
    metadata,
    sa.Column("flow_id", sa.Text, sa.ForeignKey("flows.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("definition", Json, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
)

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, sa.ForeignKey("environments.id"), nullable=False),
    sa.Column("flow_id", sa.Text, sa.ForeignKey("flows.id"), nullable=False, index=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("hook_id", sa.Text, nullable=True, unique=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("mapping", Json, nullable=False),
    sa.Column("verification", Json, nullable=True),
    sa.Column("allowed_ips", Json, nullable=False),
    sa.Column("capture_armed", sa.Boolean, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("event_name", sa.Text, nullable=True),  # an event trigger's event (migration 5)
    sa.Column("segment_id", sa.Text, nullable=True),  # a segment trigger's segment (migration 6)
    sa.Column("capture_expires_at", UtcDateTime, nullable=True),  # when an armed capture lapses (migration 18)
    sa.Index("ix_triggers_environment_event", "environment_id", "event_name"),
    sa.Index("ix_triggers_environment_created", "environment_id", "created_at", "id"),  # the listing (migration 12)
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("trigger_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_samples_trigger_seq", "trigger_id", "seq"),
)

request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("environment_id", sa.Text, nullable=True),
    sa.Column("trigger_id", sa.Text, nullable=True),
    sa.Column("hook_id", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("client_ip", sa.Text, nullable=True),
    sa.Column("headers", Json, nullable=False),
    sa.Column("content_type", sa.Text, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("body_bytes", sa.Integer, nullable=False),
    sa.Column("body_truncated", sa.Boolean, nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("cause", sa.Text, nullable=True),
    sa.Column("mode", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("mapping", Json, nullable=True),
    sa.Column("response", Json, nullable=True),
    sa.Column("invocation_id", sa.Text, nullable=True),
    sa.Column("replay_of", sa.Text, nullable=True),
    sa.Index("ix_request_log_trigger_seq", "trigger_id", "seq"),
    sa.Index("ix_request_log_environment_seq", "environment_id", "seq"),
    # A request's replays, for a bulk replay to pass over those already recovered (migration 16). Partial:
    # a request as it arrived (nearly all of them) adds nothing to it.
    sa.Index(
        "ix_request_log_replay_of",
        "replay_of",
        sqlite_where=sa.text("replay_of IS NOT NULL"),
        postgresql_where=sa.text("replay_of IS NOT NULL"),
    ),
)

invocations = sa.Table(
    "invocations",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("flow_id", sa.Text, nullable=False),
    sa.Column("flow_version", sa.Integer, nullable=True),
    sa.Column("trigger_id", sa.Text, nullable=True),
    sa.Column("request_id", sa.Text, nullable=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("flow_invocation_id", sa.Text, nullable=False),
    sa.Column("payload_hash", sa.Text, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Event triggers: how many events in a row led here (None: not started by an event; migration 5).
    sa.Column("hop", sa.Integer, nullable=True),
    # The idempotency key: test and live are separate namespaces (migration 3).
    sa.Index("uq_invocations_flow_mode_key", "flow_id", "mode", "flow_invocation_id", unique=True),
    sa.Index("ix_invocations_status_seq", "status", "seq"),
)


# --- Flows at run time (issue 4): templates, test users, instances, cards, analytics ---

card_templates = sa.Table(
    "card_templates",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, sa.ForeignKey("environments.id"), nullable=False, index=True),
    sa.Column("draft", Json, nullable=False),
    sa.Column("draft_revision", sa.Integer, nullable=False),
    sa.Column("published_version", sa.Integer, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

card_template_versions = sa.Table(
    "card_template_versions",
    metadata,
    sa.Column("template_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("draft", Json, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
)

test_users = sa.Table(
    "test_users",
    metadata,
    sa.Column("environment_id", sa.Text, sa.ForeignKey("environments.id"), primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# A flow definition as run, keyed by the SHA-256 of its JSON: instances of a
# test run keep the draft they started with, and equal definitions share a row.
flow_snapshots = sa.Table(
    "flow_snapshots",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("definition", Json, nullable=False),
)

# How far the executor got expanding an invocation too large for one transaction.
invocation_progress = sa.Table(
    "invocation_progress",
    metadata,
    sa.Column("invocation_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, nullable=False),
    sa.Column("next_index", sa.Integer, nullable=False),
)

flow_instances = sa.Table(
    "flow_instances",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("flow_id", sa.Text, nullable=False),
    sa.Column("flow_version", sa.Integer, nullable=True),
    sa.Column("snapshot_id", sa.Text, nullable=False),
    sa.Column("invocation_id", sa.Text, nullable=False),
    sa.Column("flow_invocation_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("event_source", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("pc", sa.Integer, nullable=False),
    sa.Column("outcomes", Json, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=True),
    sa.Column("waiting_card_id", sa.Text, nullable=True),
    sa.Column("released_by", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("invocation_id", "user_id", name="uq_flow_instances_invocation_user"),
    sa.Index("ix_flow_instances_due_at", "due_at"),
)

cards = sa.Table(
    "cards",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("flow_id", sa.Text, nullable=False),
    sa.Column("flow_instance_id", sa.Text, nullable=False),
    sa.Column("flow_invocation_id", sa.Text, nullable=False),
    sa.Column("step_id", sa.Text, nullable=False),
    sa.Column("template_id", sa.Text, nullable=False),
    sa.Column("template_version", sa.Integer, nullable=True),
    sa.Column("event_source", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("definition", Json, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("flow_instance_id", "step_id", name="uq_cards_instance_step"),
    sa.Index("ix_cards_user_seq", "environment_id", "user_id", "seq"),
)

analytics_events = sa.Table(
    "analytics_events",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),  # derived from the effect: a repeat is a no-op
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("event_name", sa.Text, nullable=False),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("end_user_id", sa.Text, nullable=True),
    sa.Column("flow_id", sa.Text, nullable=True),
    sa.Column("flow_instance_id", sa.Text, nullable=True),
    sa.Column("flow_invocation_id", sa.Text, nullable=True),
    sa.Column("card_instance_id", sa.Text, nullable=True),
    sa.Column("event_source", sa.Text, nullable=False),
    sa.Column("properties", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Index("ix_analytics_events_environment_seq", "environment_id", "seq"),
    # A customer's events of a name, counted by segment rules (store.segments; migration 7).
    sa.Index("ix_analytics_events_environment_user_event", "environment_id", "end_user_id", "event_name"),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, sa.ForeignKey("environments.id"), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, nullable=False, index=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


# --- Event triggers (SPEC §6) ---

# The outbox between an event (sent to the API, or emitted by a flow) and the event triggers it
# fires: one row per (event, trigger), written in the event's transaction, turned into an
# invocation (or a recorded refusal) by the event dispatcher.
event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),  # derived from (event, trigger): a repeat is a no-op
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("trigger_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),  # analytics_events.id
    sa.Column("hop", sa.Integer, nullable=False),  # 1 for an event sent to the API; a flow's events: its hop + 1
    sa.Column("status", sa.Text, nullable=False),  # pending, then accepted | duplicate | skipped | failed
    sa.Column("cause", sa.Text, nullable=True),  # pending: the cause of the last (transient) failure, if any
    sa.Column("detail", Json, nullable=True),  # what the mapping gave: output, errors, logs
    sa.Column("invocation_id", sa.Text, nullable=True),
    sa.Column("flow_invocation_id", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # The dispatcher's attempts at it, and when a pending one is (next) due: a transient failure is retried
    # later (migration 10). A row written without a due time (by an older version) is due at once.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_at", UtcDateTime, nullable=False, server_default="1970-01-01 00:00:00"),
    sa.Index("ix_event_deliveries_status_due", "status", "due_at", "seq"),  # the due pending ones, in order
    sa.Index("ix_event_deliveries_trigger_seq", "trigger_id", "seq"),
    sa.Index("ix_event_deliveries_event", "event_id"),  # a repeated event's deliveries (migration 7)
)


# --- Customers, segments, bulk starts (SPEC §6; migration 6) ---

# A customer profile: the attributes segments filter on and bulk starts match (`target.attributes.<field>`).
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("uq_customers_environment_user", "environment_id", "user_id", unique=True),
)

# A segment: filter rules over profile attributes and events; its members are kept in segment_members,
# and every entry and exit is a `segment-entered` / `segment-exited` analytics event.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("rules", Json, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # The evaluation over every customer that a create or an edit starts, a chunk per transaction (migration 11):
    # the revision evaluated to the end, and how far the current revision's evaluation got. The lease says until
    # when whoever advances it holds it; set while the evaluation is unfinished (NULL once done), so a lease in
    # the past is an evaluation nobody is advancing, which the background finishes (flows.segment_evaluation).
    sa.Column("evaluated_revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("evaluation_after", sa.BigInteger, nullable=True),  # the last customer (seq) evaluated
    sa.Column("evaluation_lease", UtcDateTime, nullable=True, index=True),
    # What the current revision's evaluation did so far; NULL for a segment evaluated before they were counted.
    sa.Column("evaluation_examined", sa.Integer, nullable=True),
    sa.Column("evaluation_entered", sa.Integer, nullable=True),
    sa.Column("evaluation_exited", sa.Integer, nullable=True),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("entered_at", UtcDateTime, nullable=False),
    sa.Index("ix_segment_members_environment_user", "environment_id", "user_id"),
)

# A bulk start processed in the background with its progress: a CSV task (`csv`, `csv-test`) or a
# manual start for selected customers (`manual`).
bulk_tasks = sa.Table(
    "bulk_tasks",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("environment_id", sa.Text, nullable=False),
    sa.Column("flow_id", sa.Text, nullable=True),  # None for a test sender task naming a flow per row
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | running | done | failed
    sa.Column("input", Json, nullable=False),  # the rows (CSV) or the selection (manual)
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("processed", sa.Integer, nullable=False),
    sa.Column("started", sa.Integer, nullable=False),  # invocations accepted
    sa.Column("callback", Json, nullable=True),  # a Marketo task's callback: status, attempts, outcome
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_bulk_tasks_status_seq", "status", "seq"),
)

# A bulk task's skipped rows, one row each: a JSON list on the task was rewritten whole with every chunk.
bulk_task_skips = sa.Table(
    "bulk_task_skips",
    metadata,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("number", Sequence, primary_key=True, autoincrement=False),  # the task's 1st skipped row, 2nd, …
    sa.Column("ref", Json, nullable=False),  # which row: {"row": 3} (CSV), {"userId": "u1"} (manual), a lead's
    sa.Column("code", sa.Text, nullable=False),  # why, for machines: stable whatever the reason's wording
    sa.Column("reason", sa.Text, nullable=False),
)

# A test sender's started rows that named users who are not test users (migration 17): whom each ignored, as
# `/test` answers `ignoredUserIds`, the first ones listed (store.bulk_tasks.MAX_IGNORED_LISTED) and how many.
bulk_task_ignored = sa.Table(
    "bulk_task_ignored",
    metadata,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),  # the CSV row (the header is row 1)
    sa.Column("user_ids", Json, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
)

# The customers a start of a segment trigger's existing members selected (migration 14), as many as the
# segment holds: numbered from 1 in the order they entered it, each with the time their membership began (it
# keys their run: one per membership). The runner removes a chunk's rows with the chunk.
bulk_task_users = sa.Table(
    "bulk_task_users",
    metadata,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("number", Sequence, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("entered_at", UtcDateTime, nullable=False),
)
