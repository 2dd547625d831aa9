"""Transfer: each instruction from matching reaches France once, and the audit says so."""
from __future__ import annotations

import json

import pytest
import uuid
from datetime import date, datetime, timedelta, timezone

from aiokafka import ConsumerRecord

from services.transfer.app import Transfer
from shared import topics
from shared.events.internal import ArrivalParticulars, Instruction, Particulars
from shared.events.outbound import AdmissionOffered, Decision, ReturnRequested, ReturnRequestWithdrawn
from shared.ids import derived_id
from shared.runtime import BatchContext
from shared.state import Snapshot

T0 = datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)
RULES = "oioo-rules-1.0"
PARTICULARS = Particulars(family_name="Doe", given_names="Jane", date_of_birth="1990-01-01",
                          nationality="ERI", landed_at=(T0 - timedelta(days=2)).isoformat(),
                          landing_point="Dover", vessel_ref="V1")


def instruction(kind: str, **fields) -> Instruction:
    return Instruction(instruction_id=str(uuid.uuid4()), kind=kind, occurred_at=T0.isoformat(),
                       caused_by=str(uuid.uuid4()), rule_version=RULES, **fields)


def request_return(request_id: str = "REQ-1", arrival_id: str = "ARR-1") -> Instruction:
    return instruction("RequestReturn", request_id=request_id, arrival_id=arrival_id,
                       reply_due_by=(T0 + timedelta(days=14)).isoformat(),
                       week="2025-W36")


def withdraw_return(request_id: str = "REQ-1", reason_code: str = "claim_upheld") -> Instruction:
    return instruction("WithdrawReturn", request_id=request_id, reason_code=reason_code)


def offer_admission(application_id: str = "APP-1") -> Instruction:
    return instruction("OfferAdmission", application_id=application_id, family_group_ref="FAM-1",
                       paired_request_ids=["REQ-1"], week="2025-W36",
                       visa_valid_until=datetime(2025, 12, 1, 8, tzinfo=timezone.utc).isoformat())


def particulars(arrival_id: str, landed_at: datetime = T0 - timedelta(days=2)) -> ArrivalParticulars:
    """What intake sends transfer alone when an arrival is recorded."""
    return ArrivalParticulars(arrival_id=arrival_id, occurred_at=landed_at.isoformat(),
                              **PARTICULARS.model_copy(update={"landed_at": landed_at.isoformat()}).model_dump())


class Harness:
    def __init__(self, arrivals: tuple[str, ...] = ("ARR-1", "ARR-2", "ARR-3"), retention_days: int = 30) -> None:
        self.service = Transfer(retention_days)
        self.seen: set[str] = set()
        self.records: dict[str, dict] = {}
        self.offsets = {topics.MATCHING_INSTRUCTIONS: 0, topics.INTAKE_PARTICULARS: 0}
        for arrival_id in arrivals:
            self.feed(particulars(arrival_id))

    def record(self, value: Instruction | ArrivalParticulars | bytes) -> ConsumerRecord:
        topic = topics.INTAKE_PARTICULARS if isinstance(value, ArrivalParticulars) else topics.MATCHING_INSTRUCTIONS
        raw = value if isinstance(value, bytes) else value.model_dump_json().encode()
        self.offsets[topic] += 1
        return ConsumerRecord(topic, 0, self.offsets[topic] - 1, 0, 0, None, raw, None, 0, len(raw), [])

    def feed(self, *values: Instruction | ArrivalParticulars | bytes) -> BatchContext:
        ctx = BatchContext(self.seen)
        for value in values:
            self.service.handle(self.record(value), ctx)
        self.service.finish(ctx)
        self.seen.update(ctx.changes.seen)
        self.records.update({k: json.loads(v) for k, v in ctx.changes.upserts.items()})
        for key in ctx.changes.deletes:
            self.records.pop(key, None)
        return ctx

    @property
    def register(self) -> dict[str, dict]:
        return {k: v for k, v in self.records.items() if k.startswith(("request:", "offer:"))}


def published(ctx: BatchContext) -> list[tuple[str, str]]:
    return [(o.topic, o.key) for o in ctx.out]


def test_a_return_request_goes_to_france_with_the_particulars_and_is_audited():
    h = Harness()
    order = request_return()
    ctx = h.feed(order)
    assert published(ctx) == [(topics.LIAISON_UK_RETURN_REQUESTS, "REQ-1"), (topics.OPS_AUDIT, "REQ-1")]
    sent = ReturnRequested.model_validate_json(ctx.out[0].value)
    assert sent.event_id == uuid.UUID(order.instruction_id) and sent.occurred_at == T0
    assert (sent.request_id, sent.arrival_id, sent.week) == ("REQ-1", "ARR-1", "2025-W36")
    assert (sent.family_name, sent.given_names, sent.date_of_birth) == ("Doe", "Jane", date(1990, 1, 1))
    assert sent.landed_at == T0 - timedelta(days=2) and sent.reply_due_by == T0 + timedelta(days=14)
    assert (sent.nationality, sent.landing_point, sent.vessel_ref) == ("ERI", "Dover", "V1")
    decision = Decision.model_validate_json(ctx.out[1].value)
    assert (decision.subject_ref, decision.decision, decision.reasons) == ("REQ-1", "requested", ["pair_formed"])
    assert decision.event_id == derived_id(order.instruction_id, "decision")
    assert decision.caused_by == order.caused_by and decision.rule_version == RULES
    assert b"Doe" not in ctx.out[1].value and b"1990" not in ctx.out[1].value
    assert h.records["request:REQ-1"]["status"] == "requested"
    assert h.records["request:REQ-1"]["arrival_id"] == "ARR-1"
    assert "Doe" not in json.dumps(h.register)  # particulars go to France, not into the register


def test_a_withdrawal_names_the_request_and_the_reason():
    h = Harness()
    h.feed(request_return())
    order = withdraw_return()
    ctx = h.feed(order)
    assert published(ctx) == [(topics.LIAISON_UK_RETURN_REQUESTS, "REQ-1"), (topics.OPS_AUDIT, "REQ-1")]
    withdrawn = ReturnRequestWithdrawn.model_validate_json(ctx.out[0].value)
    assert (withdrawn.request_id, withdrawn.reason_code) == ("REQ-1", "claim_upheld")
    assert withdrawn.event_id == uuid.UUID(order.instruction_id)
    decision = Decision.model_validate_json(ctx.out[1].value)
    assert (decision.decision, decision.reasons) == ("withdrawn", ["claim_upheld"])
    assert h.records["request:REQ-1"]["status"] == "withdrawn"
    assert h.records["request:REQ-1"]["arrival_id"] == "ARR-1"


def test_an_offer_goes_to_the_admission_notices_and_is_audited():
    h = Harness()
    order = offer_admission()
    ctx = h.feed(order)
    assert published(ctx) == [(topics.LIAISON_UK_ADMISSION_NOTICES, "APP-1"), (topics.OPS_AUDIT, "APP-1")]
    offered = AdmissionOffered.model_validate_json(ctx.out[0].value)
    assert (offered.application_id, offered.family_group_ref, offered.paired_request_ids, offered.week) == (
        "APP-1", "FAM-1", ["REQ-1"], "2025-W36")
    assert offered.visa_valid_until == datetime(2025, 12, 1, 8, tzinfo=timezone.utc)
    assert offered.event_id == uuid.UUID(order.instruction_id)
    decision = Decision.model_validate_json(ctx.out[1].value)
    assert (decision.subject_ref, decision.decision, decision.reasons) == (
        "APP-1", "offered", ["paired_returns_executed"])


def test_each_instruction_is_sent_once_and_never_twice():
    h = Harness()
    request, withdraw, offer = request_return(), withdraw_return(), offer_admission()
    first = h.feed(request, offer, request, offer)  # redelivered inside the batch
    assert len(first.out) == 4
    assert h.feed(request, offer).out == []  # and in a later batch
    assert len(h.feed(withdraw).out) == 2
    assert h.feed(withdraw).out == []


def test_what_was_already_done_is_not_done_again_under_another_instruction():
    h = Harness()
    h.feed(request_return(), offer_admission())
    assert h.feed(request_return()).out == []  # the same request sent again
    assert h.feed(offer_admission()).out == []  # a second offer for the application
    h.feed(withdraw_return())
    assert h.feed(withdraw_return()).out == []  # withdrawn twice
    assert h.feed(request_return()).out == []  # a withdrawn request is not sent again
    assert h.records["request:REQ-1"]["status"] == "withdrawn"


def test_a_withdrawal_of_a_request_never_sent_tells_france_nothing():
    h = Harness()
    ctx = h.feed(withdraw_return("REQ-404"))
    assert ctx.out == [] and "request:REQ-404" not in h.records


def test_an_instruction_decided_again_before_its_commit_publishes_the_same_events():
    # The runner re-decides a batch whose publish or commit failed, with the service's memory
    # already holding that batch's changes.
    h = Harness()
    order = request_return()
    rec = h.record(order)
    first, again = BatchContext(set()), BatchContext(set())
    h.service.handle(rec, first)
    h.service.handle(rec, again)
    assert [(o.topic, o.key, o.value) for o in again.out] == [(o.topic, o.key, o.value) for o in first.out]
    assert len(again.out) == 2


def test_bans_are_not_transfers():
    h = Harness()
    ban = instruction("RecordBan", arrival_id="ARR-1", returned_request_id="REQ-0")
    ctx = h.feed(ban)
    assert ctx.out == [] and ctx.changes.seen == [] and h.register == {}


def test_a_broken_instruction_raises_for_the_runtime_to_dead_letter_and_changes_nothing():
    h = Harness()
    values = [b"{not json", json.dumps({"kind": "RequestReturn", "family_name": "Doe"}).encode(),
              instruction("RequestReturn", request_id="REQ-2"),
              request_return().model_copy(update={"instruction_id": "not-a-uuid"}),
              offer_admission().model_copy(update={"paired_request_ids": []})]
    for value in values:
        with pytest.raises(Exception):
            h.feed(value)
    assert h.register == {} and h.seen == set()
    assert len(h.feed(request_return("REQ-2")).out) == 2


def test_restore_from_the_committed_records_gives_the_same_subsequent_decisions():
    h = Harness()
    h.feed(request_return("REQ-1"), request_return("REQ-2", "ARR-2"), offer_admission("APP-1"),
           withdraw_return("REQ-2"))
    restored = Transfer()
    restored.restore(Snapshot(1, json.loads(json.dumps(h.records)), set(h.seen), {}, {}))

    later = [request_return("REQ-1"), withdraw_return("REQ-1"), withdraw_return("REQ-2"),
             offer_admission("APP-1"), offer_admission("APP-2"), request_return("REQ-3", "ARR-3")]
    results = []
    for service in (h.service, restored):
        ctx = BatchContext(set(h.seen))
        for value in later:
            service.handle(h.record(value), ctx)
        service.finish(ctx)
        results.append(([(o.topic, o.key, o.value) for o in ctx.out], ctx.changes.upserts))
    assert results[0] == results[1]
    assert [key for _, key, _ in results[0][0]] == ["REQ-1", "REQ-1", "APP-2", "APP-2", "REQ-3", "REQ-3"]


def test_a_request_read_before_its_particulars_waits_for_them_then_goes_once():
    h = Harness(arrivals=())
    order = request_return("REQ-1", "ARR-9")
    assert h.feed(order).out == []
    assert "waiting:ARR-9" in h.records and "request:REQ-1" not in h.records
    ctx = h.feed(particulars("ARR-9"))
    assert published(ctx) == [(topics.LIAISON_UK_RETURN_REQUESTS, "REQ-1"), (topics.OPS_AUDIT, "REQ-1")]
    assert ReturnRequested.model_validate_json(ctx.out[0].value).event_id == uuid.UUID(order.instruction_id)
    assert "waiting:ARR-9" not in h.records and h.records["request:REQ-1"]["status"] == "requested"
    assert h.feed(order).out == []  # the same instruction again: nothing new


def test_particulars_are_forgotten_once_the_retention_period_is_over():
    h = Harness(arrivals=("ARR-1",), retention_days=30)
    landed = T0 - timedelta(days=2)
    assert "particulars:ARR-1" in h.records
    tick = instruction("OfferAdmission", application_id="APP-1", family_group_ref=None, paired_request_ids=["REQ-0"],
                       week="2025-W36", visa_valid_until=(T0 + timedelta(days=90)).isoformat())
    h.feed(tick.model_copy(update={"occurred_at": (landed + timedelta(days=30) - timedelta(seconds=1)).isoformat()}))
    assert "particulars:ARR-1" in h.records
    h.feed(tick.model_copy(update={"instruction_id": str(uuid.uuid4()),
                                   "occurred_at": (landed + timedelta(days=30)).isoformat()}))
    assert "particulars:ARR-1" not in h.records and "Doe" not in json.dumps(h.records)
    # particulars that arrive already past their retention are not kept at all
    old = T0 - timedelta(days=60)
    h.feed(particulars("ARR-OLD", landed_at=old))
    assert "particulars:ARR-OLD" not in h.records


def test_a_replay_whose_particulars_expired_rebuilds_the_register_and_sends_nothing():
    h = Harness(arrivals=())
    ctx = BatchContext(h.seen, replay=True)
    h.service.handle(h.record(request_return("REQ-1", "ARR-GONE")), ctx)
    assert [o.topic for o in ctx.out] == [topics.OPS_AUDIT]  # the audit line; France was told before
    assert json.loads(ctx.changes.upserts["request:REQ-1"])["status"] == "requested"


def test_retention_shorter_than_the_request_window_is_refused(monkeypatch):
    from shared.settings import Settings
    monkeypatch.setenv("PERSONAL_DATA_RETENTION_DAYS", "14")
    with pytest.raises(SystemExit, match="more than 14"):
        Settings.from_env()


def test_particulars_far_ahead_do_not_forget_those_a_pair_behind_them_still_needs():
    """A backlog or a replay: intake's particulars run months ahead of matching's pairs. The clock
    that forgets particulars is matching's (its instructions, DayBegan), not theirs."""
    h = Harness(arrivals=("ARR-1",))
    h.feed(particulars("ARR-LATER", landed_at=T0 + timedelta(days=90)))
    assert "particulars:ARR-1" in h.records
    ctx = h.feed(request_return("REQ-1", "ARR-1"))
    assert published(ctx) == [(topics.LIAISON_UK_RETURN_REQUESTS, "REQ-1"), (topics.OPS_AUDIT, "REQ-1")]
    # matching's clock past ARR-1's retention (landed T0 - 2 days): forgotten, the later one kept
    h.feed(instruction("DayBegan", day="2025-09-30").model_copy(
        update={"occurred_at": (T0 + timedelta(days=28)).isoformat()}))
    assert "particulars:ARR-1" not in h.records and "particulars:ARR-LATER" in h.records
