"""Enforcement's biometric index and bans, driven through Service.handle() without a broker."""
from __future__ import annotations

import json

import pytest
import logging
import uuid
from datetime import datetime, timedelta, timezone

from aiokafka import ConsumerRecord
from hypothesis import given, settings, strategies as st

from services.enforcement.app import Enforcement
from services.enforcement.rules import person_key
from shared import topics
from shared.events.internal import AcceptedEvent, Instruction, ScreenedEvent
from shared.events.outbound import AsylumBanRecorded, Decision
from shared.ids import derived_id
from shared.runtime import BatchContext
from shared.state import Snapshot

T0 = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)
ALICE = "a1" * 32
BOB = "b2" * 32
RULES = "oioo-rules-1.0"


# ---- building what the topics would carry --------------------------------------------------
def kafka_record(topic: str, offset: int, key: str | None, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key.encode() if key else None, value, None, 0,
                          len(value), [])


def _common(event_type: str, minutes: int, event_id: str | None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "event_type": event_type,
            "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(), "producer": "test"}


def arrival(arrival_id: str, biometric: str, minutes: int = 0, event_id: str | None = None) -> dict:
    """An arrival as intake forwards it: the names and date of birth went to transfer alone."""
    return {**_common("ArrivalRecorded", minutes, event_id), "arrival_id": arrival_id,
            "biometric_id": biometric, "nationality": "ERI", "claimed_minor": False,
            "landed_at": (T0 + timedelta(minutes=minutes)).isoformat(), "landing_point": "Dover",
            "vessel_ref": "V1", "departed_from": "FRA", "rescued_at_sea": False,
            "asylum_claimed": True}


def vetted(application_id: str, biometric: str, minutes: int = 0, event_id: str | None = None) -> dict:
    return {**_common("ApplicationVetted", minutes, event_id), "application_id": application_id,
            "biometric_id": biometric, "security_outcome": "clear"}


def encounter(report_id: str, biometric: str, minutes: int = 0, event_id: str | None = None) -> dict:
    return {**_common("IllegalWorkingEncounter", minutes, event_id), "report_id": report_id,
            "biometric_id": biometric, "employer_ref": "E1"}


def detained(arrival_id: str, minutes: int = 0) -> dict:
    return {**_common("PersonDetained", minutes, None), "arrival_id": arrival_id}


SOURCE = {"ArrivalRecorded": topics.BORDER_ARRIVALS, "ApplicationVetted": topics.ADMISSIONS_APPLICATIONS,
          "IllegalWorkingEncounter": topics.ENFORCEMENT_ILLEGAL_WORKING,
          "PersonDetained": topics.CASEWORK_UPDATES}


def record_ban(arrival_id: str, returned_request_id: str, minutes: int = 0,
               instruction_id: str | None = None) -> Instruction:
    return Instruction(instruction_id=instruction_id or str(uuid.uuid4()), kind="RecordBan",
                       occurred_at=(T0 + timedelta(minutes=minutes)).isoformat(),
                       caused_by=str(uuid.uuid4()), rule_version=RULES, arrival_id=arrival_id,
                       returned_request_id=returned_request_id)


class Harness:
    """The runner's loop without Kafka or Redis: offsets, seen ids and records kept in memory."""

    def __init__(self) -> None:
        self.service = Enforcement()
        self.seen: set[str] = set()
        self.records: dict[str, dict] = {}
        self.offsets = {topics.INTAKE_ACCEPTED: 0, topics.MATCHING_INSTRUCTIONS: 0}
        self.log: list[ConsumerRecord] = []  # everything fed, for replays

    def accepted(self, event: dict) -> ConsumerRecord:
        envelope = AcceptedEvent(source_topic=SOURCE[event["event_type"]], source_partition=0,
                                 source_offset=0, event=event)
        return self._next(topics.INTAKE_ACCEPTED, None, envelope.model_dump_json().encode())

    def instruction(self, instruction: Instruction | bytes) -> ConsumerRecord:
        value = instruction if isinstance(instruction, bytes) else instruction.model_dump_json().encode()
        return self._next(topics.MATCHING_INSTRUCTIONS, None, value)

    def _next(self, topic: str, key: str | None, value: bytes) -> ConsumerRecord:
        rec = kafka_record(topic, self.offsets[topic], key, value)
        self.offsets[topic] += 1
        return rec

    def feed(self, *records: ConsumerRecord, service: Enforcement | None = None) -> BatchContext:
        ctx = BatchContext(self.seen)
        for rec in records:
            (service or self.service).handle(rec, ctx)
        (service or self.service).finish(ctx)
        self.commit(ctx)
        self.log.extend(records)
        return ctx

    def commit(self, ctx: BatchContext) -> None:
        self.seen.update(ctx.changes.seen)
        for key, value in ctx.changes.upserts.items():
            self.records[key] = json.loads(value)
        for key in ctx.changes.deletes:
            self.records.pop(key, None)

    def snapshot(self) -> Snapshot:
        return Snapshot(1, json.loads(json.dumps(self.records)), set(self.seen), {}, {})

    def screen(self, event: dict) -> ScreenedEvent | None:
        """Feed one accepted event and return what was forwarded for it (None: nothing)."""
        ctx = self.feed(self.accepted(event))
        screened = [o for o in ctx.out if o.topic == topics.ENFORCEMENT_SCREENED]
        assert len(screened) <= 1
        return ScreenedEvent.model_validate_json(screened[0].value) if screened else None

    def ban(self, instruction: Instruction | bytes) -> BatchContext:
        return self.feed(self.instruction(instruction))


def ids(screened: ScreenedEvent) -> tuple[list[str], list[str], list[str]]:
    s = screened.screening
    return s.arrival_ids, s.application_ids, s.report_ids


# ---- screening ------------------------------------------------------------------------------
def test_arrival_after_an_application_lists_the_application_and_earlier_arrivals():
    h = Harness()
    assert ids(h.screen(vetted("APP-1", ALICE))) == ([], [], [])
    assert ids(h.screen(arrival("ARR-1", ALICE, 1))) == ([], ["APP-1"], [])
    assert ids(h.screen(arrival("ARR-2", ALICE, 2))) == (["ARR-1"], ["APP-1"], [])


def test_application_after_arrivals_and_reports_lists_them():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(encounter("REP-1", ALICE, 1))
    h.screen(arrival("ARR-2", ALICE, 2))
    assert ids(h.screen(vetted("APP-1", ALICE, 3))) == (["ARR-1", "ARR-2"], [], ["REP-1"])
    # a second application of the same person is not listed against the first: only
    # arrivals and reports matter to an applicant
    assert ids(h.screen(vetted("APP-2", ALICE, 4))) == (["ARR-1", "ARR-2"], [], ["REP-1"])


def test_application_before_a_report_is_listed_on_the_report_not_the_other_way():
    h = Harness()
    assert ids(h.screen(vetted("APP-1", ALICE))) == ([], [], [])
    assert ids(h.screen(encounter("REP-1", ALICE, 1))) == ([], ["APP-1"], [])


def test_report_lists_arrivals_and_applications_in_either_order():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    assert ids(h.screen(encounter("REP-1", ALICE, 1))) == (["ARR-1"], [], [])
    h.screen(vetted("APP-1", ALICE, 2))
    assert ids(h.screen(encounter("REP-2", ALICE, 3))) == (["ARR-1"], ["APP-1"], [])
    # and the reports are then on the next application's screening
    assert ids(h.screen(vetted("APP-2", ALICE, 4))) == (["ARR-1"], [], ["REP-1", "REP-2"])


def test_another_persons_records_are_never_listed():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", ALICE, 1))
    assert ids(h.screen(arrival("ARR-2", BOB, 2))) == ([], [], [])
    assert ids(h.screen(vetted("APP-2", BOB, 3))) == (["ARR-2"], [], [])


def test_forwarded_event_keeps_every_field_but_the_biometric_and_is_keyed_by_subject():
    h = Harness()
    event = arrival("ARR-1", ALICE)
    ctx = h.feed(h.accepted(event))
    [out] = ctx.out
    assert out.topic == topics.ENFORCEMENT_SCREENED and out.key == "ARR-1"
    assert ALICE.encode() not in out.value
    screened = ScreenedEvent.model_validate_json(out.value)
    assert screened.source_topic == topics.BORDER_ARRIVALS
    assert screened.event == {k: v for k, v in event.items() if k != "biometric_id"}


def test_events_without_a_biometric_are_forwarded_unchanged_in_input_order():
    h = Harness()
    events = [detained("ARR-9"), vetted("APP-1", ALICE, 1), encounter("REP-1", ALICE, 2), detained("ARR-8", 3)]
    ctx = h.feed(*(h.accepted(e) for e in events))
    assert [o.key for o in ctx.out] == ["ARR-9", "APP-1", "REP-1", "ARR-8"]
    first = ScreenedEvent.model_validate_json(ctx.out[0].value)
    assert first.event == events[0] and first.screening.model_dump() == {
        "arrival_ids": [], "application_ids": [], "report_ids": [], "person_bucket": None}
    assert all(o.topic == topics.ENFORCEMENT_SCREENED for o in ctx.out)


def test_a_duplicate_event_id_is_forwarded_once_and_indexed_once():
    h = Harness()
    event = arrival("ARR-1", ALICE)
    ctx = h.feed(h.accepted(event), h.accepted(event))
    assert len(ctx.out) == 1
    assert h.screen(event) is None  # in a later batch too
    assert ids(h.screen(vetted("APP-1", ALICE, 1))) == (["ARR-1"], [], [])


def test_the_biometric_is_stored_only_in_the_person_record():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", ALICE, 1))
    holding = [k for k, v in h.records.items() if ALICE in json.dumps(v) or ALICE in k]
    assert holding == [person_key(ALICE)]
    assert h.records[person_key(ALICE)]["arrival_ids"] == ["ARR-1"]
    assert h.records["arrival:ARR-1"] == {"person": person_key(ALICE)}


def test_now_is_the_latest_event_time_and_never_goes_back():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE, 10))
    h.screen(detained("ARR-1", 5))
    assert h.records["meta"] == {"now": (T0 + timedelta(minutes=10)).isoformat()}
    assert h.service.now == T0 + timedelta(minutes=10)


# ---- bans -----------------------------------------------------------------------------------
def _bans(ctx: BatchContext) -> list[AsylumBanRecorded]:
    return [AsylumBanRecorded.model_validate_json(o.value) for o in ctx.out if o.topic == topics.ENFORCEMENT_BANS]


def _decisions(ctx: BatchContext) -> list[Decision]:
    return [Decision.model_validate_json(o.value) for o in ctx.out if o.topic == topics.OPS_AUDIT]


def test_a_ban_is_recorded_once_per_person_across_two_reentries():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(arrival("ARR-2", ALICE, 60))
    first = record_ban("ARR-2", "REQ-1", 61)
    ctx = h.ban(first)
    [ban] = _bans(ctx)
    assert ban.event_id == uuid.UUID(first.instruction_id)
    assert ban.biometric_id == ALICE and ban.returned_request_id == "REQ-1"
    assert ban.reason == "reentry_after_return" and ban.occurred_at == T0 + timedelta(minutes=61)
    assert [o.key for o in ctx.out if o.topic == topics.ENFORCEMENT_BANS] == [ALICE]
    [decision] = _decisions(ctx)
    assert (decision.subject_ref, decision.decision, decision.reasons) == ("ARR-2", "banned", ["reentry_after_return"])
    assert decision.event_id == derived_id(first.instruction_id, "decision")
    assert decision.caused_by == first.caused_by and decision.rule_version == RULES
    assert ALICE.encode() not in next(o.value for o in ctx.out if o.topic == topics.OPS_AUDIT)

    h.screen(arrival("ARR-3", ALICE, 120))
    ctx = h.ban(record_ban("ARR-3", "REQ-2", 121))
    assert _bans(ctx) == []
    [decision] = _decisions(ctx)
    assert (decision.subject_ref, decision.reasons) == ("ARR-3", ["reentry_after_return", "already_banned"])
    assert [o.key for o in ctx.out] == ["ARR-3"]
    assert h.records[person_key(ALICE)]["banned_request_id"] == "REQ-1"


def test_a_ban_applies_to_the_person_not_the_arrival():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(arrival("ARR-2", BOB, 1))
    assert len(_bans(h.ban(record_ban("ARR-1", "REQ-1", 2)))) == 1
    assert len(_bans(h.ban(record_ban("ARR-2", "REQ-2", 3)))) == 1


def test_the_same_ban_instruction_is_acted_on_once():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    instruction = record_ban("ARR-1", "REQ-1", 1)
    assert len(h.ban(instruction).out) == 2
    assert h.ban(instruction).out == []


def test_a_ban_batch_decided_again_before_its_commit_publishes_the_same_ban():
    # The runner re-decides a batch whose publish or commit failed, with the service's memory
    # already holding that batch's changes: the same instruction must give the same events.
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    instruction = record_ban("ARR-1", "REQ-1", 1)
    rec = h.instruction(instruction)
    first, again = BatchContext(set(h.seen)), BatchContext(set(h.seen))
    h.service.handle(rec, first)
    h.service.handle(rec, again)
    assert [(o.topic, o.key, o.value) for o in again.out] == [(o.topic, o.key, o.value) for o in first.out]
    assert len(_bans(again)) == 1


def test_a_ban_read_before_its_arrival_waits_for_it():
    # A rebuild replays both input topics and may read the instructions first.
    h = Harness()
    ctx = h.ban(record_ban("ARR-1", "REQ-1", 1))
    assert ctx.out == [] and "pending-ban:ARR-1" in h.records
    ctx = h.feed(h.accepted(arrival("ARR-1", ALICE)))
    assert [o.topic for o in ctx.out] == [topics.ENFORCEMENT_SCREENED, topics.ENFORCEMENT_BANS, topics.OPS_AUDIT]
    assert "pending-ban:ARR-1" not in h.records
    assert h.records[person_key(ALICE)]["banned_request_id"] == "REQ-1"


def test_rebuilding_with_the_instructions_read_first_gives_the_same_index():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", BOB, 1))
    h.screen(arrival("ARR-2", ALICE, 60))
    h.ban(record_ban("ARR-2", "REQ-1", 61))
    h.screen(arrival("ARR-3", ALICE, 120))
    h.ban(record_ban("ARR-3", "REQ-2", 121))
    h.screen(encounter("REP-1", BOB, 130))

    replay = Harness()
    instructions = [r for r in h.log if r.topic == topics.MATCHING_INSTRUCTIONS]
    accepted = [r for r in h.log if r.topic == topics.INTAKE_ACCEPTED]
    replay.feed(*instructions, *accepted)
    assert replay.records == h.records and replay.seen == h.seen


def test_other_instruction_kinds_are_not_enforcements():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    other = Instruction(instruction_id=str(uuid.uuid4()), kind="RequestReturn",
                        occurred_at=T0.isoformat(), caused_by="x", rule_version=RULES,
                        arrival_id="ARR-1", request_id="REQ-1")
    ctx = h.ban(other)
    assert ctx.out == [] and ctx.changes.seen == []


def test_a_broken_instruction_raises_for_the_runtime_to_dead_letter_and_changes_nothing():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    before = json.loads(json.dumps(h.records))
    for value in (b"not json", json.dumps({"kind": "RecordBan", "biometric_id": ALICE}).encode(),
                  record_ban("ARR-1", "").model_dump_json().encode(),
                  record_ban("ARR-1", "REQ-1", instruction_id="not-a-uuid").model_dump_json().encode()):
        with pytest.raises(Exception):
            h.ban(value)
    assert h.records == before
    assert len(_bans(h.ban(record_ban("ARR-1", "REQ-1", 1)))) == 1


def test_an_unreadable_accepted_envelope_raises():
    h = Harness()
    rec = h._next(topics.INTAKE_ACCEPTED, None, json.dumps({"source_topic": "x", "event": {"biometric_id": ALICE}}).encode())
    with pytest.raises(Exception):
        h.feed(rec)


# ---- restore ----------------------------------------------------------------------------------
def test_restore_from_the_committed_records_gives_the_same_subsequent_decisions():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", ALICE, 1))
    h.screen(arrival("ARR-2", ALICE, 60))
    h.ban(record_ban("ARR-2", "REQ-1", 61))
    h.ban(record_ban("ARR-9", "REQ-9", 62))  # pending: its arrival comes later
    restored = Enforcement()
    restored.restore(h.snapshot())
    assert restored.now == h.service.now

    later = [arrival("ARR-3", ALICE, 120), encounter("REP-1", ALICE, 121), vetted("APP-2", ALICE, 122),
             arrival("ARR-9", BOB, 123)]
    instructions = [record_ban("ARR-3", "REQ-2", 124)]
    records = [h.accepted(e) for e in later] + [h.instruction(i) for i in instructions]
    results = []
    for service in (h.service, restored):
        ctx = BatchContext(set(h.seen))
        for rec in records:
            service.handle(rec, ctx)
        service.finish(ctx)
        results.append(([(o.topic, o.key, o.value) for o in ctx.out], ctx.changes.upserts, ctx.changes.deletes))
    assert results[0] == results[1]
    bans = [key for topic, key, _ in results[0][0] if topic == topics.ENFORCEMENT_BANS]
    assert bans == [BOB]  # ARR-9's waiting ban; ARR-3's person was banned before the restore


# ---- the index against a naive recomputation ------------------------------------------------
KINDS = {"ArrivalRecorded": (arrival, "arrival_id"), "ApplicationVetted": (vetted, "application_id"),
         "IllegalWorkingEncounter": (encounter, "report_id")}
event_spec = st.tuples(
    st.sampled_from(sorted(KINDS)),
    st.integers(0, 3),                # which id of that kind (ids repeat: a corrected record)
    st.sampled_from([ALICE, BOB, "c3" * 32]),
    st.integers(0, 40),               # event id (repeats are duplicates)
    st.integers(-5, 5),               # minutes, out of order allowed
)


def naive_screening(prefix: list[dict], event: dict) -> dict:
    """What the screening should be, recomputed from scratch over the events before it."""
    mine = [e for e in prefix if e["biometric_id"] == event["biometric_id"]]

    def ids_of(kind: str, exclude: str | None = None) -> list[str]:
        found: list[str] = []
        for e in mine:
            own = e[KINDS[kind][1]] if e["event_type"] == kind else None
            if own is not None and own not in found and own != exclude:
                found.append(own)
        return found

    kind = event["event_type"]
    if kind == "ArrivalRecorded":
        return {"arrival_ids": ids_of(kind, event["arrival_id"]),
                "application_ids": ids_of("ApplicationVetted"), "report_ids": []}
    if kind == "ApplicationVetted":
        return {"arrival_ids": ids_of("ArrivalRecorded"), "application_ids": [],
                "report_ids": ids_of("IllegalWorkingEncounter")}
    return {"arrival_ids": ids_of("ArrivalRecorded"), "application_ids": ids_of("ApplicationVetted"),
            "report_ids": []}


@settings(max_examples=200, deadline=None)
@given(st.lists(event_spec, max_size=30), st.integers(1, 5))
def test_each_screening_equals_a_naive_recomputation_from_the_prefix(specs, batch_size):
    events = []
    for kind, n, biometric, eid, minutes in specs:
        make, id_field = KINDS[kind]
        prefix = {"ArrivalRecorded": "ARR", "ApplicationVetted": "APP", "IllegalWorkingEncounter": "REP"}[kind]
        events.append(make(f"{prefix}-{n}", biometric, minutes, event_id=str(uuid.UUID(int=eid))))
    h = Harness()
    out = []
    for start in range(0, len(events), batch_size):
        ctx = h.feed(*(h.accepted(e) for e in events[start:start + batch_size]))
        out += [ScreenedEvent.model_validate_json(o.value) for o in ctx.out]

    accepted, seen_ids = [], set()
    for e in events:
        if e["event_id"] in seen_ids:
            continue
        seen_ids.add(e["event_id"])
        expected_screening = naive_screening(accepted, e)
        accepted.append(e)
        got = out.pop(0)
        assert got.event["event_id"] == e["event_id"]
        assert got.screening.model_dump() == {**expected_screening, "person_bucket": None}
        assert "biometric_id" not in got.event
    assert out == []

    # and a rebuild from the same log, one record per batch, ends in the same records
    replay = Harness()
    for rec in h.log:
        replay.feed(rec)
    assert replay.records == h.records
