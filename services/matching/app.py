"""Matching wiring: screened events in; audit, alerts, balance and instructions out."""
from __future__ import annotations

import logging

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.matching.exchange import Effect, Exchange
from shared import topics
from shared.events.inbound import ANY_INBOUND
from shared.events.internal import Instruction, ScreenedEvent
from shared.events.outbound import Alert, Decision, WeeklyBalance
from shared.ids import derived_id
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.store import QuotaChange, Snapshot

log = logging.getLogger("oioo.matching")
PRODUCER = "oioo-matching"
# Enforcement keeps biometrics to itself and strips them; the models still want the field.
NO_BIOMETRIC = "0" * 64
BIOMETRIC_EVENTS = frozenset({"ArrivalRecorded", "ApplicationVetted", "IllegalWorkingEncounter"})


class Matching(Service):
    name = "matching"
    input_topics = (topics.ENFORCEMENT_SCREENED,)
    output_topics = (topics.OPS_AUDIT, topics.OPS_ALERTS, topics.OPS_BALANCE, topics.MATCHING_INSTRUCTIONS)

    def __init__(self, settings: Settings):
        self.settings = settings
        self.exchange = Exchange(settings)

    def restore(self, snapshot: Snapshot) -> None:
        self.exchange.load(snapshot.records)

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        try:
            screened = ScreenedEvent.model_validate_json(rec.value)
            document = dict(screened.event)
            if document.get("event_type") in BIOMETRIC_EVENTS:
                document.setdefault("biometric_id", NO_BIOMETRIC)
            event = ANY_INBOUND.validate_python(document)
        except (ValidationError, ValueError) as exc:
            log.error("matching: unreadable record at %s:%s:%s (%s)", rec.topic, rec.partition, rec.offset,
                      exc.__class__.__name__)
            return
        cause = str(event.event_id)
        if not ctx.first_time(cause):
            return
        effects = self.exchange.apply(event, screened.screening)
        for n, effect in enumerate(effects):
            self._emit(effect, cause, n, ctx)
        self._persist(ctx)

    def _emit(self, effect: Effect, cause: str, n: int, ctx: BatchContext) -> None:
        now = self.exchange.now
        event_id = derived_id(cause, "effect", n)
        d = effect.data
        common = {"event_id": event_id, "occurred_at": now, "producer": PRODUCER}
        if effect.kind == "decision":
            ctx.emit(topics.OPS_AUDIT, d["subject_ref"], Decision(
                **common, subject_ref=d["subject_ref"], decision=d["decision"], reasons=d["reasons"],
                rule_version=self.settings.rule_version, caused_by=cause))
        elif effect.kind == "alert":
            ctx.emit(topics.OPS_ALERTS, d["subject_ref"], Alert(**common, alert_id=str(event_id), **d))
        elif effect.kind == "balance":
            ctx.emit(topics.OPS_BALANCE, d["week"], WeeklyBalance(**common, **d))
        elif effect.kind == "instruction":
            instruction = Instruction(instruction_id=str(event_id), occurred_at=now.isoformat(), caused_by=cause,
                                      rule_version=self.settings.rule_version, **d)
            key = d.get("request_id") or d.get("application_id") or d.get("arrival_id")
            ctx.emit(topics.MATCHING_INSTRUCTIONS, key, instruction.model_dump_json().encode())

    def _persist(self, ctx: BatchContext) -> None:
        ex = self.exchange
        for key, record in ex.records(ex.dirty).items():
            if record is None:
                ctx.changes.delete(key)
            else:
                ctx.changes.put(key, record)
        ex.dirty.clear()
        for week, delta in ex.quota.items():
            prior = ctx.changes.quota.get(week)
            ctx.changes.quota[week] = QuotaChange(
                week=week, delta_live=delta.delta + (prior.delta_live if prior else 0),
                cap=ex.cap_of(ex.week(week)), check=delta.formed or bool(prior and prior.check))
        ex.quota.clear()


def build(settings: Settings | None = None) -> Runner:
    settings = settings or Settings.from_env()
    return Runner(Matching(settings), settings)
