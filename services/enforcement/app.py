"""Enforcement wiring: the biometric index between intake and matching, and the ban register.

Accepted events in -> screened events out (in input order, the biometric stripped); RecordBan
instructions in -> AsylumBanRecorded (once per person) and a Decision out.

Records: "person:<sha256 of biometric>" -> Person.to_record(biometric); "arrival:<arrival_id>" ->
{"person": <person key>}; "pending-ban:<arrival_id>" -> {"instructions": [...]} for a ban
whose arrival is not indexed yet; "meta" -> {"now": ...}.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime

from aiokafka import ConsumerRecord
from pydantic_core import to_json

from services.enforcement import rules
from services.enforcement.index import Rebuild
from services.enforcement.order import accepted_order
from shared import topics
from shared.events.in_house import Accepted, read_accepted
from shared.events.inbound import subject_of
from shared.events.internal import Instruction
from shared.events.outbound import AsylumBanRecorded, Decision
from shared.ids import derived_id
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.shards import Shard, bucket_of
from shared.state import Snapshot

log = logging.getLogger("oioo.enforcement")
PRODUCER = "oioo-enforcement"
RECORD_BAN = "RecordBan"
PENDING_BAN = "pending-ban:"


class Enforcement(Service):
    name = "enforcement"
    input_topics = (topics.INTAKE_ACCEPTED, topics.MATCHING_INSTRUCTIONS)
    prompt = True  # between an arrival and its first Decision: short hops (shared/settings.py)
    output_topics = (topics.ENFORCEMENT_SCREENED, topics.ENFORCEMENT_BANS, topics.OPS_AUDIT)
    # enforcement can run in shards, each its own people (shared/shards.py)
    shards_setting = "enforcement_shards"
    sharded_output = topics.ENFORCEMENT_SCREENED
    reads_every_partition = True

    def __init__(self, intake_shards: int = 1, shard: Shard = Shard()) -> None:
        self.shard = shard
        if intake_shards > 1 or shard.split:
            # intake's shards' partitions are merged back into one intake's order, and a shard of
            # enforcement keeps that order for matching (shared/shards.py)
            self.order_key = accepted_order
        if intake_shards > 1:
            self.marked_inputs = (topics.INTAKE_ACCEPTED,)
        self.restore(Snapshot(0, {}, set(), {}, {}))

    def restore(self, snapshot: Snapshot) -> None:
        rebuilt = self.restoring()
        rebuilt.add(snapshot.records)
        rebuilt.finish(snapshot)

    def restoring(self) -> "Restore":
        """Chunk by chunk as Redis gives the records: the index is most of a restart's memory."""
        return Restore(self)

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        if rec.topic == topics.INTAKE_ACCEPTED:
            self._screen(rec, ctx)
        elif rec.topic == topics.MATCHING_INSTRUCTIONS:
            self._instruct(rec, ctx)

    # ---- accepted events -> screened events ------------------------------------------------
    def _screen(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        bucket = bucket_in(rec.value) if self.shard.split else None
        if self.shard.split and not self.shard.owns(bucket):
            return  # another shard's person (or, with no biometric, shard 0's event)
        # Intake wrote it, so an unreadable one is our own bug: raising dead-letters it
        # (processing_error) without quoting the value.
        accepted = read_accepted(rec.value or b"")  # the envelope and its event, validated once
        event = accepted.event
        if not ctx.first_time(str(event.event_id), event.occurred_at):
            return
        self._advance(event.occurred_at, ctx)
        screening = rules.NOTHING_KNOWN
        if event.event_type in rules.INDEXED:
            screening = self._index(event, ctx)
        else:
            bucket = None  # only an indexed event's person has a shard for matching to carry on
        # the bucket that routed it here: matching carries it onto a RecordBan, the person's shard
        ctx.emit(topics.ENFORCEMENT_SCREENED, subject_of(event),
                 screened_json(accepted, screening, bucket))
        if event.event_type == "ArrivalRecorded":
            self._release_pending(event.arrival_id, ctx)

    def _index(self, event, ctx: BatchContext) -> rules.Screening:
        event_type = event.event_type
        own_id = getattr(event, rules.INDEXED[event_type][1])
        hex_id = event.biometric_id
        key = rules.person_key(hex_id)
        biometric = bytes.fromhex(hex_id)
        person = self.index.person(biometric)
        screening = rules.screening_for(person, event_type, own_id)
        updated = rules.indexed(person, event_type, own_id)
        if updated is not person:
            self.index.put(biometric, updated)
        ctx.changes.put(key, updated.to_record(hex_id))
        if event_type == "ArrivalRecorded":
            known = self.index.owner(own_id)
            if known is None:
                self.index.add_arrival(own_id, biometric)
                ctx.changes.put(f"arrival:{own_id}", {"person": key})
            elif known != biometric:
                log.warning("arrival %s recorded again under another biometric; keeping the first", own_id)
        return screening

    # ---- instructions -> bans --------------------------------------------------------------
    def _instruct(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        instruction = Instruction.model_validate_json(rec.value or b"")
        if instruction.kind != RECORD_BAN:
            return  # transfer's
        if self.shard.split and not self._mine(instruction):
            return
        order = rules.ban_order(instruction)  # raises on a RecordBan it cannot act on: dead-lettered
        if not ctx.first_time(instruction.instruction_id, order.occurred_at):
            return
        self._advance(order.occurred_at, ctx)
        if self.index.owner(order.arrival_id) is None:
            # Only on a replay that reads the instructions ahead of the accepted events (or a
            # redelivery): the ban waits for its arrival, so the index rebuilds the same.
            log.warning("ban for arrival %s waits until the arrival is indexed", order.arrival_id)
            waiting = self.pending.setdefault(order.arrival_id, [])
            waiting.append(instruction)
            ctx.changes.put(PENDING_BAN + order.arrival_id,
                            {"instructions": [i.model_dump() for i in waiting]})
            return
        self._ban(order, ctx)

    def _mine(self, instruction: Instruction) -> bool:
        """A shard's ban: by the person's bucket, which matching carried from the screened arrival;
        a ban without one (its arrival screened before enforcement ran in shards) is the shard's
        that knows the arrival, and no shard waits for it."""
        if instruction.person_bucket is not None:
            return self.shard.owns(instruction.person_bucket)
        return instruction.arrival_id is not None and self.index.owner(instruction.arrival_id) is not None

    def _release_pending(self, arrival_id: str, ctx: BatchContext) -> None:
        waiting = self.pending.pop(arrival_id, None)
        if waiting is None:
            return
        ctx.changes.delete(PENDING_BAN + arrival_id)
        for instruction in waiting:
            self._ban(rules.ban_order(instruction), ctx)

    def _ban(self, order: rules.BanOrder, ctx: BatchContext) -> None:
        biometric = self.index.owner(order.arrival_id)
        hex_id = biometric.hex()
        person = self.index.person(biometric)
        outcome = rules.ban_outcome(person, order)
        if outcome.person != person:
            self.index.put(biometric, outcome.person)
            ctx.changes.put(rules.person_key(hex_id), outcome.person.to_record(hex_id))
        if outcome.record_ban:
            ban = AsylumBanRecorded(
                event_id=order.instruction_id, occurred_at=order.occurred_at, producer=PRODUCER,
                biometric_id=hex_id, reason=rules.BAN_REASON, returned_request_id=order.returned_request_id,
            )
            ctx.emit(topics.ENFORCEMENT_BANS, hex_id, ban)
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
            self._clock_moved = True

    def finish(self, ctx: BatchContext) -> None:
        if self._clock_moved:
            ctx.changes.put("meta", {"now": self.now.isoformat()})
            self._clock_moved = False


class Restore:
    """Enforcement's state from its stored records, a chunk at a time (shared/state.Restoring),
    each record decoded once."""

    def __init__(self, service: Enforcement):
        self._service = service
        self._index = Rebuild()
        self._pending: dict[str, list[Instruction]] = {}
        self._now: datetime | None = None

    def add(self, records: Mapping[str, dict]) -> None:
        self._index.add(records)
        for key in records:
            if key.startswith(PENDING_BAN):
                self._pending[key[len(PENDING_BAN):]] = [Instruction.model_validate(i)
                                                         for i in records[key]["instructions"]]
            elif key == "meta":
                now = records[key].get("now")
                self._now = datetime.fromisoformat(now) if now else None

    def finish(self, snapshot: Snapshot) -> None:
        service = self._service
        service.index = self._index.done()
        service.pending = self._pending
        service.now = self._now
        service._clock_moved = False  # since the last batch finished: "meta" is put once, by finish


_NOT_FORWARDED = frozenset({"biometric_id"})  # matching needs the ids, never the biometric: it stays here
_BIOMETRIC = re.compile(rb'"biometric_id":"([0-9A-Fa-f]{2,256})"')


def bucket_in(value: bytes | None) -> int | None:
    """The bucket of the biometric an accepted envelope names (None: it names none, or none that
    reads as hex; such an event is shard 0's, which dead-letters it if it cannot be read).
    Intake wrote the envelope compactly, so a biometric is `"biometric_id":"<hex>"`."""
    found = _BIOMETRIC.search(value or b"")
    if found is None or len(found.group(1)) % 2:
        return None
    return bucket_of(bytes.fromhex(found.group(1).decode("ascii")))


def screened_json(accepted: Accepted, screening: rules.Screening, bucket: int | None = None) -> bytes:
    """The ScreenedEvent for matching, as JSON: the same bytes as `ScreenedEvent(source_topic=...,
    source_partition=..., source_offset=..., event=<event less its biometric>,
    screening=Screening(..., person_bucket=bucket)).model_dump_json()`, without building and
    validating the model per event."""
    return b"".join((
        b'{"source_topic":', to_json(accepted.source_topic),
        b',"source_partition":', to_json(accepted.source_partition),
        b',"source_offset":', to_json(accepted.source_offset),
        b',"event":', to_json(accepted.document, exclude=_NOT_FORWARDED, inf_nan_mode="null"),
        b',"screening":{"arrival_ids":', to_json(screening.arrival_ids),
        b',"application_ids":', to_json(screening.application_ids),
        b',"report_ids":', to_json(screening.report_ids),
        b',"person_bucket":', to_json(bucket), b"}}",
    ))


def build(settings: Settings | None = None) -> Runner:
    settings = settings or Settings.from_env()
    return Runner(Enforcement(settings.intake_shards, Shard.of(settings, settings.enforcement_shards)), settings)
