"""Matching judged by event time: late facts, the weekly figures, the 90-day hold limit,
deferred events, families with a declared size, stable ids, and out-of-range input."""
import pytest
from pydantic import ValidationError

from datetime import datetime, timedelta, timezone

from tests.support.factory import (DAY, HOUR, MINUTE, T0, admission_arrived, answer, arrival, cap_set, casework, eoi, executed,
                                   tick, vetted, withdrawn)
from tests.unit.harness import Harness, Wired
from shared.shards import bucket_of
from shared.timeutil import iso_week

SEP5 = datetime(2025, 9, 5, 10, 0, tzinfo=timezone.utc)
SEP19 = datetime(2025, 9, 19, 11, 0, tzinfo=timezone.utc)
OCT18 = datetime(2025, 10, 18, 4, 0, tzinfo=timezone.utc)


def ready_applicant(h, app, at, **kw):
    h.send(eoi(app, at, **kw))
    h.send(vetted(app, at))


def returned_then_back(h, docs=None) -> tuple[str, dict, list]:
    """Returned on 19 Sep; back on 18 Oct; the escorts' ReturnExecuted reaches us after that."""
    docs = docs or [eoi("P1", SEP5 - HOUR), vetted("P1", SEP5 - HOUR), arrival("A1", SEP5, person="X")]
    for d in docs[:3]:
        h.send(d)
    rid = h.requests()["A1"]
    if len(docs) == 3:
        docs += [answer(rid, SEP5 + DAY), executed(rid, SEP19),
                 arrival("B-old", OCT18 - 2 * DAY),  # an older waiting arrival, not the same person
                 arrival("A2", OCT18, person="X", asylum_claimed=True)]
    h.send(docs[3])
    h.send(docs[5])
    h.send(docs[6])
    assert h.decisions("A2", "blocked")[0]["reasons"] == ["asylum_claim_undecided"]
    return rid, docs[4], docs


def test_a_ban_names_the_enforcement_shard_of_the_person_after_a_restart_too():
    """With enforcement in shards, the screened arrival carries the person's bucket; matching
    keeps it on the case and puts it on the RecordBan, so the ban reaches the person's shard."""
    h = Harness()
    h.screener.buckets = True
    rid, late, docs = returned_then_back(h)
    h.restart()  # the bucket is part of the case's record
    h.send(late)
    [ban] = h.instructions("RecordBan")
    [a2] = [d for d in docs if d.get("arrival_id") == "A2" and d["event_type"] == "ArrivalRecorded"]
    assert ban["arrival_id"] == "A2" and ban["person_bucket"] == bucket_of(bytes.fromhex(a2["biometric_id"]))


def test_a_late_return_makes_the_later_crossing_a_reentry():
    h = Harness()
    rid, late, _ = returned_then_back(h)
    out = h.send(late)
    [ban] = h.instructions("RecordBan")
    assert ban == {"kind": "RecordBan", "arrival_id": "A2", "returned_request_id": rid, "person_bucket": None}
    assert [d.subject_ref for d in out if d.kind == "decision" and d.decision == "reentry_detected"] == ["A2"]
    # the asylum claim no longer blocks, and the re-entrant goes first
    assert "reentrant_after_return" in h.decisions("A2", "eligible")[-1]["reasons"]
    ready_applicant(h, "P2", OCT18 + HOUR)
    assert h.instructions("RequestReturn")[-1]["arrival_id"] == "A2"
    # counted once, in the week the re-entry became a fact (the later of the two)
    assert h.balance(iso_week(OCT18))["reentries_detected"] == 1


def test_late_and_in_order_delivery_ban_alike():
    late = Harness()
    rid, doc, docs = returned_then_back(late)
    late.send(doc)
    in_order = Harness()
    for d in docs:
        in_order.send(d)
    assert in_order.instructions("RecordBan") == late.instructions("RecordBan")
    assert in_order.decisions("A2", "reentry_detected") == late.decisions("A2", "reentry_detected")
    assert in_order.balance(iso_week(OCT18))["reentries_detected"] == 1


def test_an_arrival_that_landed_before_the_return_is_no_reentry():
    h = Harness()
    ready_applicant(h, "P1", SEP5 - HOUR)
    h.send(arrival("A1", SEP5, person="X"))
    rid = h.requests()["A1"]
    h.send(answer(rid, SEP5 + DAY))
    h.send(arrival("A2", SEP19 + HOUR, landed_at=SEP19 - HOUR, person="X"))
    h.send(executed(rid, SEP19))
    assert h.instructions("RecordBan") == []


def test_the_late_return_survives_a_restart_of_the_person_link():
    h = Harness()
    rid, late, _ = returned_then_back(h)
    h.restart()
    h.send(late)
    assert [b["arrival_id"] for b in h.instructions("RecordBan")] == ["A2"]


def test_a_late_sunday_execution_counts_in_its_own_week_and_republishes_it():
    h = Harness()
    rid = paired_once(h, T0)  # Monday 1 Sep
    sunday = T0 + 6 * DAY + 10 * HOUR  # Sunday 7 Sep, same ISO week
    h.send(tick(T0 + 7 * DAY + 12 * HOUR))  # Monday 8 Sep: a new week
    out = h.send(executed(rid, sunday))
    assert h.balance(iso_week(sunday))["returns_executed"] == 1
    assert h.balance(iso_week(T0 + 7 * DAY + 12 * HOUR))["returns_executed"] == 0
    assert [d.data["week"] for d in out if d.kind == "balance"][0] == iso_week(sunday)


def paired_once(h, at) -> str:
    ready_applicant(h, "P1", at)
    h.send(arrival("A1", at))
    rid = h.requests()["A1"]
    h.send(answer(rid, at + HOUR))
    return rid


def test_a_hold_that_opens_after_day_ninety_is_withdrawn_at_once():
    for restart in (False, True):
        h = Harness()
        rid = paired_once(h, T0)
        h.send(tick(T0 + 91 * DAY))
        assert h.instructions("WithdrawReturn") == []
        if restart:
            h.restart()
        h.send(casework("LegalChallengeFiled", "A1", T0 + 92 * DAY, challenge_id="J1", kind="judicial_review"))
        [w] = h.instructions("WithdrawReturn")
        assert w == {"kind": "WithdrawReturn", "request_id": rid, "reason_code": "three_month_limit"}
        assert h.decisions("A1", "ineligible")[-1]["reasons"] == ["three_month_limit"]


def test_deferred_casework_waits_fourteen_days_then_is_ignored():
    h = Harness()
    h.send(casework("PersonAbsconded", "A9", T0))
    assert h.decisions("A9", "deferred")
    h.send(tick(T0 + 14 * DAY - MINUTE))
    assert h.decisions("A9", "ignored") == []
    h.send(tick(T0 + 14 * DAY))
    assert h.decisions("A9", "ignored")[0]["reasons"] == ["unknown_subject"]
    h.send(arrival("A9", T0 + 14 * DAY + MINUTE, landed_at=T0 + 14 * DAY))
    assert "absconded" not in h.decisions("A9")[-1]["reasons"]


def test_deferred_vetting_is_applied_when_the_application_arrives():
    h = Harness()
    h.send(vetted("P1", T0))
    h.send(eoi("P1", T0 + DAY))
    assert h.decisions("P1", "eligible")


def test_inapplicable_events_are_audited_as_ignored():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(casework("AsylumClaimDecided", "A1", T0 + MINUTE, outcome="withdrawn"))
    assert h.decisions("A1", "ignored")[0]["reasons"] == ["no_asylum_claim"]
    h.send(eoi("P1", T0))
    h.send(withdrawn("P1", T0 + HOUR))
    h.send(vetted("P1", T0 + 2 * HOUR))
    assert h.decisions("P1", "ignored")[0]["reasons"] == ["application_withdrawn"]


def test_every_event_gets_a_decision():
    h = Harness()
    h.send(arrival("A1", T0))
    out = h.send(casework("AgeAssessed", "A1", T0 + MINUTE, assessed_minor=False))
    assert [(d.subject_ref, d.decision) for d in out if d.kind == "decision"] == [("A1", "recorded")]


def test_family_with_a_declared_size_waits_for_its_third_member():
    h = Harness()
    for i in range(4):
        h.send(arrival(f"A{i}", T0 + i * MINUTE))
    for m in ("F1", "F2"):
        ready_applicant(h, m, T0 + HOUR, family="FAM", nationality="AFG")
    h.send(eoi("F3", T0 + 2 * HOUR, family="FAM", nationality="AFG"))
    # without the size, the two ready members who applied are the whole group
    assert h.decisions("F1", "paired") and h.decisions("F2", "paired")
    h2 = Harness()
    for i in range(4):
        h2.send(arrival(f"A{i}", T0 + i * MINUTE))
    for m in ("F1", "F2"):
        h2.send(eoi(m, T0 + HOUR, family="FAM", nationality="AFG") | {"family_group_size": 3})
        h2.send(vetted(m, T0 + HOUR))
    assert h2.instructions("RequestReturn") == []
    assert h2.decisions("F2", "blocked")[-1]["reasons"] == ["awaiting_family_members"]
    h2.send(eoi("F3", T0 + 2 * HOUR, family="FAM", nationality="AFG", dob="2015-01-01"))
    assert h2.instructions("RequestReturn") == []
    h2.send(vetted("F3", T0 + 3 * HOUR))
    assert sorted(r["arrival_id"] for r in h2.instructions("RequestReturn")) == ["A0", "A1", "A2"]
    assert all("family_group_of_3" in h2.decisions(m, "paired")[0]["reasons"] for m in ("F1", "F2", "F3"))


def test_a_week_that_does_not_exist_or_a_time_out_of_range_never_reaches_the_domain():
    # intake dead-letters these (schema); should one reach matching, the model refuses it, the
    # runtime dead-letters the record (processing_error) and the state is untouched
    w = Wired()
    w.send(arrival("A1", T0))
    before = dict(w.records)
    far = datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)
    for doc in (cap_set("2025-W53", 3, T0), tick(far), arrival("A2", T0 + HOUR, landed_at=far), eoi("P9", far)):
        with pytest.raises(ValidationError):
            w.send(doc)
    assert w.records == before


def test_outbound_ids_name_what_they_are_about_not_their_position():
    w = Wired()
    w.send(eoi("P1", T0))
    w.send(vetted("P1", T0))
    out = w.send(arrival("A1", T0 + HOUR))
    import json
    from shared.ids import derived_id
    cause = json.loads(out[0][2])["caused_by"]
    ids = {json.loads(v).get("event_id") or json.loads(v)["instruction_id"] for _, _, v in out}
    assert str(derived_id(cause, "decision", "A1", "paired")) in ids
    assert str(derived_id(cause, "balance", iso_week(T0))) in ids
    rid = str(derived_id(cause, "request", "A1"))
    assert str(derived_id(cause, "instruction", "RequestReturn", rid)) in ids
    assert len(ids) == len(out)


def test_deadlines_due_together_fire_in_a_stable_order_after_a_restart():
    def run(restart: bool) -> list:
        w = Wired()
        for i in (2, 0, 1):  # recorded out of order, landed at the same instant
            w.send(arrival(f"A{i}", T0 + i * MINUTE, landed_at=T0) | {"event_id": f"00000000-0000-4000-8000-00000000000{i}"})
        if restart:
            w.restart()
        return w.send(tick(T0 + 15 * DAY) | {"event_id": "00000000-0000-4000-8000-0000000000ff"})

    assert run(False) == run(True)


def test_a_family_waiting_on_its_last_return_survives_a_restart():
    h = Harness()
    for m in ("F1", "F2"):
        ready_applicant(h, m, T0, family="FAM")
    h.send(arrival("A1", T0 + MINUTE))
    h.send(arrival("A2", T0 + 2 * MINUTE))
    r1, r2 = h.requests()["A1"], h.requests()["A2"]
    h.send(executed(r1, T0 + DAY))
    h.restart()
    h.send(executed(r2, T0 + 2 * DAY))
    assert sorted(o["application_id"] for o in h.instructions("OfferAdmission")) == ["F1", "F2"]


def test_the_live_state_does_not_grow_with_finished_journeys():
    h = Harness()
    h.send(cap_set(iso_week(T0), 1000, T0))
    at = T0
    for i in range(200):
        ready_applicant(h, f"P{i}", at)
        h.send(arrival(f"A{i}", at))
        rid = h.requests()[f"A{i}"]
        h.send(answer(rid, at + MINUTE))
        h.send(executed(rid, at + 2 * MINUTE))
        h.send(admission_arrived(f"P{i}", at + 3 * MINUTE))
        h.send(arrival(f"C{i}", at, departed_from="BEL"))  # never returnable: closed at once
        at += 30 * MINUTE
    repo = h.ex.repo
    assert (len(repo.cases), len(repo.seats), len(repo.pairs)) == (0, 0, 0)
    assert len(h.ex.returns) == len(h.ex.ready_seats) == 0
    # what stays is what a later event needs: the returns (for a re-entry), the final statuses
    assert len(repo.returned) == 200 and len(repo.closed_cases) == 200 and len(repo.closed_seats) == 200
    h.send(arrival("again", at, person="A7"))
    assert h.instructions("RecordBan")[-1]["arrival_id"] == "again"
