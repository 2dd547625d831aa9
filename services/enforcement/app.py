"""Enforcement wiring: the biometric index between intake and matching, and the ban register.

Accepted events in -> screened events out (in input order, the biometric stripped); RecordBan
instructions in -> AsylumBanRecorded (once per person) and a Decision out.

Records: "person:<sha256 of biometric>" -> Person.to_record(); "arrival:<arrival_id>" ->
{"person": <person key>}; "pending-ban:<arrival_id>" -> {"instructions": [...]} for a ban
whose arrival is not indexed yet; "meta" -> {"now": ...}.
"""
from __future__ import annotations

import logging
from datetime import datetime

from aiokafka import ConsumerRecord

from services.enforcement import rules
from shared import topics
from shared.events.inbound import ANY_IN_HOUSE, subject_of
from shared.events.internal import AcceptedEvent, Instruction, Screening, ScreenedEvent
from shared.events.outbound import AsylumBanRecorded, Decision
from shared.ids import derived_id
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.store import Snapshot

log = logging.getLogger("oioo.enforcement")
PRODUCER = "oioo-enforcement"
RECORD_BAN = "RecordBan"
# Shared, never mutated (the model is frozen): building Screening() per event deep-copies its
# three default lists, a tenth of this service's time per event.
NOTHING_KNOWN = Screening()


class Enforcement(Service):
    name = "enforcement"
    input_topics = (topics.INTAKE_ACCEPTED, topics.MATCHING_INSTRUCTIONS)
    output_topics = (topics.ENFORCEMENT_SCREENED, topics.ENFORCEMENT_BANS, topics.OPS_AUDIT)

    def __init__(self) -> None:
        self.restore(Snapshot(0, {}, set(), {}, {}))

    def restore(self, snapshot: Snapshot) -> None:
        records = snapshot.records
        self.persons: dict[str, rules.Person] = {
            k: rules.Person.from_record(v) for k, v in records.items() if k.startswith("person:")
        }
        self.arrivals: dict[str, str] = {
            k.removeprefix("arrival:"): v["person"] for k, v in records.items() if k.startswith("arrival:")
        }
        self.pending: dict[str, list[Instruction]] = {
            k.removeprefix("pending-ban:"): [Instruction.model_validate(i) for i in v["instructions"]]
            for k, v in records.items() if k.startswith("pending-ban:")
        }
        now = records.get("meta", {}).get("now")
        self.now: datetime | None = datetime.fromisoformat(now) if now else None

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        if rec.topic == topics.INTAKE_ACCEPTED:
            self._screen(rec, ctx)
        elif rec.topic == topics.MATCHING_INSTRUCTIONS:
            self._instruct(rec, ctx)

    # ---- accepted events -> screened events ------------------------------------------------
    def _screen(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        # Intake wrote it, so an unreadable one is our own bug: raising dead-letters it
        # (processing_error) without quoting the value.
        envelope = AcceptedEvent.model_validate_json(rec.value or b"")
        event = ANY_IN_HOUSE.validate_python(envelope.event)
        if not ctx.first_time(str(event.event_id), event.occurred_at):
            return
        self._advance(event.occurred_at, ctx)
        screening = NOTHING_KNOWN
        if event.event_type in rules.INDEXED:
            screening = self._index(event, ctx)
        # Matching needs the ids, never the biometric: it stays here.
        forwarded = {k: v for k, v in envelope.event.items() if k != "biometric_id"}
        screened = ScreenedEvent(source_topic=envelope.source_topic, event=forwarded, screening=screening)
        ctx.emit(topics.ENFORCEMENT_SCREENED, subject_of(event), screened.model_dump_json().encode())
        if event.event_type == "ArrivalRecorded":
            self._release_pending(event.arrival_id, ctx)

    def _index(self, event, ctx: BatchContext) -> Screening:
        _, id_field = rules.INDEXED[event.event_type]
        own_id = getattr(event, id_field)
        key = rules.person_key(event.biometric_id)
        person = self.persons.get(key) or rules.Person(biometric_id=event.biometric_id)
        screening = rules.screening_for(person, event.event_type, own_id)
        self.persons[key] = rules.indexed(person, event.event_type, own_id)
        ctx.changes.put(key, self.persons[key].to_record())
        if event.event_type == "ArrivalRecorded":
            known = self.arrivals.get(own_id)
            if known is None:
                self.arrivals[own_id] = key
                ctx.changes.put(f"arrival:{own_id}", {"person": key})
            elif known != key:
                log.warning("arrival %s recorded again under another biometric; keeping the first", own_id)
        return screening

    # ---- instructions -> bans --------------------------------------------------------------
    def _instruct(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        instruction = Instruction.model_validate_json(rec.value or b"")
        if instruction.kind != RECORD_BAN:
            return  # transfer's
        order = rules.ban_order(instruction)  # raises on a RecordBan it cannot act on: dead-lettered
        if not ctx.first_time(instruction.instruction_id, order.occurred_at):
            return
        self._advance(order.occurred_at, ctx)
        if order.arrival_id not in self.arrivals:
            # Only on a replay that reads the instructions ahead of the accepted events (or a
            # redelivery): the ban waits for its arrival, so the index rebuilds the same.
            log.warning("ban for arrival %s waits until the arrival is indexed", order.arrival_id)
            waiting = self.pending.setdefault(order.arrival_id, [])
            waiting.append(instruction)
            ctx.changes.put(f"pending-ban:{order.arrival_id}",
                            {"instructions": [i.model_dump() for i in waiting]})
            return
        self._ban(order, ctx)

    def _release_pending(self, arrival_id: str, ctx: BatchContext) -> None:
        waiting = self.pending.pop(arrival_id, None)
        if waiting is None:
            return
        ctx.changes.delete(f"pending-ban:{arrival_id}")
        for instruction in waiting:
            self._ban(rules.ban_order(instruction), ctx)

    def _ban(self, order: rules.BanOrder, ctx: BatchContext) -> None:
        key = self.arrivals[order.arrival_id]
        outcome = rules.ban_outcome(self.persons[key], order)
        if outcome.person != self.persons[key]:
            self.persons[key] = outcome.person
            ctx.changes.put(key, outcome.person.to_record())
        if outcome.record_ban:
            ban = AsylumBanRecorded(
                event_id=order.instruction_id, occurred_at=order.occurred_at, producer=PRODUCER,
                biometric_id=outcome.person.biometric_id, reason=rules.BAN_REASON,
                returned_request_id=order.returned_request_id,
            )
            ctx.emit(topics.ENFORCEMENT_BANS, outcome.person.biometric_id, ban)
        decision = Decision(
            event_id=derived_id(order.instruction_id, "decision"), occurred_at=order.occurred_at,
            producer=PRODUCER, subject_ref=order.arrival_id, decision="banned",
            reasons=outcome.reasons, rule_version=order.rule_version, caused_by=order.caused_by,
        )
        ctx.emit(topics.OPS_AUDIT, order.arrival_id, decision)
        log.info("arrival %s banned: %s", order.arrival_id, ", ".join(outcome.reasons))

    def _advance(self, when: datetime, ctx: BatchContext) -> None:
        if self.now is None or when > self.now:
            self.now = when
            ctx.changes.put("meta", {"now": when.isoformat()})


def build(settings: Settings | None = None) -> Runner:
    return Runner(Enforcement(), settings or Settings.from_env())
