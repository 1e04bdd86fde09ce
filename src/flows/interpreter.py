"""Runs one flow instance's steps until it waits, ends or a step fails.

Nothing here writes to the store: cards and analytics events are collected
in `Effects` and the instance's new state stays on the object, and the
batch (flows.batch) commits both in one transaction. A step's effects are
kept only if the whole step succeeded, so a failed step leaves nothing half
done, and a retry (or a re-run after a crash) produces the same ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from flows.durations import DurationError, doubling, parse_duration
from flows.placeholders import render
from flows.program import AwaitCard, Branch, Delay, Jump, Program, SendCard
from flows.templates import StepFailed, TemplateSource
from mapper.jmes import EVALUATION_ERRORS, INTERPRETER
from store.analytics import EventSubject, event_row
from store.cards import get_card
from store.flow_instances import FlowInstance
from store.idempotent import derived_id

log = logging.getLogger("flowhook.flows")

#: What a card's status means to a wait on it.
_CARD_OUTCOMES = {"completed": "card-completed", "dismissed": "card-dismissed", "expired": "card-expired"}


@dataclass(frozen=True)
class RetryPolicy:
    """A failed step is retried after base, 2×base, 4×base … (capped); after `max_attempts` the instance fails."""

    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        return doubling(attempts, self.base_seconds, self.max_seconds)


@dataclass(frozen=True)
class Run:
    """What every instance of one invocation shares."""

    invocation_id: str
    program: Program
    live: bool
    variables: dict[str, Any]
    card_options: dict[str, Any]
    metadata: dict[str, Any]
    notification_detail: dict[str, Any]
    flow_version: int | None
    trigger_id: str | None
    hop: int = 0  # events in a row that started the invocation (0: no event did); its own events are one more


@dataclass(frozen=True)
class CardContent:
    template_id: str
    template_version: int | None
    definition: dict[str, Any]
    payload: dict[str, Any]
    expires_at: datetime | None


@dataclass
class Effects:
    """Rows the batch inserts (ignoring repeats) when it commits, stamped `now`."""

    now: datetime
    cards: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_hops: list[int] = field(default_factory=list)  # each event's hop, for the event triggers it fires
    new_card_expiries: dict[str, datetime | None] = field(default_factory=dict)  # card id -> expires_at

    def emit(self, instance: FlowInstance, run: Run, name: str, properties: dict[str, Any], **ids: str) -> None:
        """Record an analytics event of `instance` (`ids`: event_row's), one hop past the event that started it."""
        self.events.append(event_row(subject_of(instance, run), name, self.now, properties, **ids))
        self.event_hops.append(run.hop + 1)


def subject_of(instance: FlowInstance, run: Run) -> EventSubject:
    return EventSubject(
        environment_id=instance.environment_id,
        end_user_id=instance.user_id,
        flow_id=instance.flow_id,
        flow_instance_id=instance.id,
        flow_invocation_id=instance.flow_invocation_id,
        event_source=instance.event_source,
        metadata=run.metadata,
    )


def card_id_for(instance_id: str, step_id: str) -> str:
    return derived_id("crd", instance_id, step_id)


class Interpreter:
    def __init__(
        self, conn: Connection, now: datetime, retry: RetryPolicy, templates: TemplateSource, effects: Effects
    ) -> None:
        self._conn = conn
        self._now = now
        self._retry = retry
        self._templates = templates
        self.effects = effects
        self._rendered: dict[tuple[str, str, int | None], CardContent] = {}

    def advance(self, instance: FlowInstance, run: Run) -> None:
        instructions = run.program.instructions
        while instance.status in ("active", "waiting"):
            if instance.pc >= len(instructions):
                self._complete(instance, run)
                return
            instruction = instructions[instance.pc]
            try:
                if not self._step(instruction, instance, run):
                    return
            except Exception as error:  # noqa: BLE001 - any step failure is retried, then recorded
                self._failed(instance, run, instruction, error)
                return
            instance.attempts = 0
            instance.last_error = None

    def _step(self, instruction: Any, instance: FlowInstance, run: Run) -> bool:
        """Run one instruction; True to go on with the next, False when the instance now waits."""
        if isinstance(instruction, Branch):
            taken = _truthy(_evaluate(instruction, {"variables": run.variables, "steps": instance.outcomes}))
            instance.pc = instance.pc + 1 if taken else instruction.else_pc
            return True
        if isinstance(instruction, Jump):
            instance.pc = instruction.target
            return True
        if isinstance(instruction, SendCard):
            self._send_card_effects(instruction, instance, run, self._card(instruction, instance, run))
        elif isinstance(instruction, Delay) and instance.status != "waiting":
            self._wait(instance, self._now + instruction.duration)
            return False
        elif isinstance(instruction, AwaitCard) and not self._card_wait_settled(instruction, instance):
            return False
        instance.status = "active"
        instance.due_at = self._now
        instance.waiting_card_id = None
        instance.released_by = None
        instance.pc += 1
        return True

    def _card_wait_settled(self, step: AwaitCard, instance: FlowInstance) -> bool:
        """Record the wait's outcome if it has one (False: the instance now waits for the card).

        A wait is due at its timeout or at the card's expiry, whichever is first: an expired
        card can no longer be acted on, so waiting on past its expiry would wait for nothing.
        """
        card_id = card_id_for(instance.id, step.card_step_id)
        if instance.status == "waiting":  # released by an action on the card, or due
            outcome: str | None = instance.released_by or self._outcome_when_due(instance, card_id)
        else:
            outcome, expires_at = self._card_state(instance, card_id)
            if outcome is None:
                timeout = self._now + step.timeout
                self._wait(instance, timeout if expires_at is None else min(timeout, expires_at), card_id)
                return False
        instance.outcomes = {**instance.outcomes, step.step_id: {"outcome": outcome}}
        return True

    def _card(self, step: SendCard, instance: FlowInstance, run: Run) -> CardContent:
        """The rendered card; the same for every user of a run, so rendered once per batch."""
        template = self._templates.resolve(instance.environment_id, step.template_id, live=run.live)
        key = (run.invocation_id, step.step_id, template.version)
        if key not in self._rendered:
            options = {**render(step.card_options, run.variables), **run.card_options}
            expires_at = None
            if "expiresAfter" in options:
                try:
                    expires_at = self._now + parse_duration(str(options["expiresAfter"]))
                except DurationError as error:
                    raise StepFailed(f"cardOptions.expiresAfter: {error}", permanent=True) from None
            payload = {
                "variables": run.variables,
                "cardOptions": options,
                "metadata": run.metadata,
                "notificationDetail": run.notification_detail,
            }
            definition = render(template.definition, run.variables)
            self._rendered[key] = CardContent(template.id, template.version, definition, payload, expires_at)
        return self._rendered[key]

    def _send_card_effects(self, step: SendCard, instance: FlowInstance, run: Run, content: CardContent) -> None:
        card_id = card_id_for(instance.id, step.step_id)
        self.effects.cards.append(
            {
                "id": card_id,
                "environment_id": instance.environment_id,
                "user_id": instance.user_id,
                "flow_id": instance.flow_id,
                "flow_instance_id": instance.id,
                "flow_invocation_id": instance.flow_invocation_id,
                "step_id": step.step_id,
                "template_id": content.template_id,
                "template_version": content.template_version,
                "event_source": instance.event_source,
                "status": "active",
                "definition": content.definition,
                "payload": content.payload,
                "expires_at": content.expires_at,
                "created_at": self._now,
                "updated_at": self._now,
            }
        )
        self.effects.new_card_expiries[card_id] = content.expires_at
        properties = {
            "cardTemplateId": content.template_id,
            "templateVersion": content.template_version,
            "stepId": step.step_id,
        }
        self.effects.emit(instance, run, "card-published", properties, effect=card_id, card_instance_id=card_id)

    def _wait(self, instance: FlowInstance, until: datetime, card_id: str | None = None) -> None:
        instance.status = "waiting"
        instance.due_at = until
        instance.waiting_card_id = card_id
        instance.released_by = None

    def _card_state(self, instance: FlowInstance, card_id: str) -> tuple[str | None, datetime | None]:
        """The outcome if the card is already settled (or was never sent), None to wait; and its expiry.

        A card in the store is read only for an instance the batch claimed, whose row it holds: a card
        action locks that row before it reads the card (store.cards.act_on_card), so the two take turns.
        """
        if card_id in self.effects.new_card_expiries:
            return None, self.effects.new_card_expiries[card_id]
        card = get_card(self._conn, instance.environment_id, card_id)
        if card is None:
            return "no-card", None
        return _CARD_OUTCOMES.get(card.status_at(self._now)), card.expires_at

    def _outcome_when_due(self, instance: FlowInstance, card_id: str) -> str:
        """An unreleased wait fell due: at the card's expiry if the card had expired by then, else at the timeout.

        Judged at `due_at`, not now, so a late executor still tells which came first.
        """
        card = get_card(self._conn, instance.environment_id, card_id)
        if card is not None and instance.due_at is not None and card.status_at(instance.due_at) == "expired":
            return _CARD_OUTCOMES["expired"]
        return "timeout"

    def _complete(self, instance: FlowInstance, run: Run) -> None:
        instance.status = "completed"
        instance.due_at = None
        properties = {"flowVersion": run.flow_version}
        self.effects.emit(instance, run, "action-flow-completed", properties, effect=instance.id)

    def _failed(self, instance: FlowInstance, run: Run, instruction: Any, error: Exception) -> None:
        step_id = getattr(instruction, "step_id", None)
        if isinstance(error, StepFailed):
            message = str(error)
        else:
            log.exception("step %s of flow instance %s failed", step_id, instance.id, exc_info=error)
            message = f"{type(error).__name__}: {error}"
        instance.attempts += 1
        instance.last_error = message
        permanent = isinstance(error, StepFailed) and error.permanent
        if instance.attempts < self._retry.max_attempts and not permanent:
            instance.due_at = self._now + self._retry.delay(instance.attempts)
            return
        instance.status = "failed"
        instance.due_at = None
        properties = {"stepId": step_id, "error": message, "attempts": instance.attempts}
        self.effects.emit(instance, run, "action-flow-failed", properties, effect=instance.id)


def _evaluate(branch: Branch, scope: dict[str, Any]) -> Any:
    """The branch's condition over `scope`; an evaluation error (a function given the wrong type) is permanent."""
    try:
        return INTERPRETER.visit(branch.condition.parsed, scope)
    except EVALUATION_ERRORS as error:
        raise StepFailed(f"condition: {error}", permanent=True) from None


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null and empty strings, lists and objects are false; every number is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True
