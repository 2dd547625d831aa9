"""Return side rules: blockers, windows, France's clocks, holds and compensation."""
import pytest

from tests.support.factory import (DAY, HOUR, MINUTE, T0, answer, arrival, cap_set, casework, eoi, executed,
                                   failed, tick, vetted)
from tests.unit.harness import Harness
from shared.timeutil import iso_week


def ready_applicant(h: Harness, app: str, at):
    h.send(eoi(app, at))
    h.send(vetted(app, at))


BLOCKERS = [
    ("minor", dict(claimed_minor=True), ("AgeAssessed", dict(assessed_minor=False))),
    ("asylum", dict(asylum_claimed=True), ("AsylumClaimDecided", dict(outcome="withdrawn"))),
    ("asylum_inadmissible", dict(asylum_claimed=True), ("AsylumClaimDecided", dict(outcome="inadmissible"))),
]


@pytest.mark.parametrize("name,arrival_fields,release", BLOCKERS)
def test_a_blocker_on_the_arrival_holds_back_the_request_until_resolved(name, arrival_fields, release):
    h = Harness()
    h.send(arrival("A1", T0, **arrival_fields))
    ready_applicant(h, "P1", T0 + HOUR)
    assert h.instructions("RequestReturn") == []
    assert h.decisions("A1", "blocked")
    h.send(casework(release[0], "A1", T0 + DAY, **release[1]))
    assert list(h.requests()) == ["A1"]


@pytest.mark.parametrize("opened,closed", [
    (("ProtectionClaimLodged", dict(claim_id="C1", kind="trafficking")),
     ("ProtectionClaimResolved", dict(claim_id="C1", outcome="refused"))),
    (("LegalChallengeFiled", dict(challenge_id="J1", kind="judicial_review")),
     ("LegalChallengeDecided", dict(challenge_id="J1", outcome="dismissed"))),
    (("PersonAbsconded", {}), ("PersonDetained", {})),
])
def test_casework_blockers_hold_back_and_release(opened, closed):
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(casework(opened[0], "A1", T0 + MINUTE, **opened[1]))
    ready_applicant(h, "P1", T0 + HOUR)
    assert h.instructions("RequestReturn") == []
    h.send(casework(closed[0], "A1", T0 + DAY, **closed[1]))
    assert list(h.requests()) == ["A1"]


@pytest.mark.parametrize("opened,upheld", [
    (("ProtectionClaimLodged", dict(claim_id="C1", kind="human_rights")),
     ("ProtectionClaimResolved", dict(claim_id="C1", outcome="upheld"))),
    (("LegalChallengeFiled", dict(challenge_id="J1", kind="appeal")),
     ("LegalChallengeDecided", dict(challenge_id="J1", outcome="upheld"))),
])
def test_an_upheld_claim_ends_the_case(opened, upheld):
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(casework(opened[0], "A1", T0 + MINUTE, **opened[1]))
    h.send(casework(upheld[0], "A1", T0 + HOUR, **upheld[1]))
    ready_applicant(h, "P1", T0 + 2 * HOUR)
    assert h.instructions("RequestReturn") == []
    assert h.decisions("A1", "ineligible")[-1]["reasons"][0].endswith("_upheld")


def test_casework_before_the_arrival_is_kept_and_applied():
    h = Harness()
    h.send(casework("LegalChallengeFiled", "A1", T0, challenge_id="J1", kind="injunction"))
    assert h.decisions("A1", "deferred")
    h.send(arrival("A1", T0 + MINUTE))
    ready_applicant(h, "P1", T0 + HOUR)
    assert h.instructions("RequestReturn") == []
    assert "legal_challenge_pending" in h.decisions("A1", "blocked")[0]["reasons"]


def test_a_decision_on_a_challenge_never_filed_is_ignored_with_a_reason():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(casework("LegalChallengeDecided", "A1", T0 + MINUTE, challenge_id="J9", outcome="dismissed"))
    assert h.decisions("A1", "ignored")[0]["reasons"] == ["legal_challenge_never_filed"]


def test_no_request_on_day_fifteen():
    h = Harness()
    h.send(arrival("A1", T0, claimed_minor=True))
    h.send(casework("AgeAssessed", "A1", T0 + 14 * DAY + MINUTE, assessed_minor=False))
    ready_applicant(h, "P1", T0 + 14 * DAY + HOUR)
    assert h.instructions("RequestReturn") == []
    assert h.decisions("A1", "ineligible")[0]["reasons"] == ["request_window_expired"]


def test_window_closing_while_waiting_is_a_decision_on_the_next_tick():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(tick(T0 + 14 * DAY))
    assert h.decisions("A1", "ineligible")[0]["reasons"] == ["request_window_expired"]


def paired(h: Harness) -> str:
    h.send(arrival("A1", T0))
    ready_applicant(h, "P1", T0 + HOUR)
    return h.requests()["A1"]


def test_a_reply_on_day_twenty_raises_reply_overdue_first():
    h = Harness()
    rid = paired(h)
    h.send(answer(rid, T0 + HOUR + 20 * DAY))
    kinds = [(e.kind, e.data.get("kind") or e.data.get("decision")) for e in h.effects]
    assert kinds.index(("alert", "reply_overdue")) < kinds.index(("decision", "accepted"))


def test_silence_until_day_twenty_eight_lapses_and_repairs_the_seat():
    h = Harness()
    rid = paired(h)
    h.send(arrival("A2", T0 + 20 * DAY))
    h.send(tick(T0 + HOUR + 28 * DAY))
    assert h.alerts("reply_lapsed")
    assert h.decisions("A1", "ineligible")[-1]["reasons"] == ["reply_lapsed"]
    reqs = h.instructions("RequestReturn")
    assert [r["arrival_id"] for r in reqs] == ["A1", "A2"]
    assert reqs[1]["request_id"] != rid
    assert "back_at_head_after_broken_pair" in h.decisions("P1", "paired")[-1]["reasons"]


def test_french_refusal_frees_the_place_in_an_open_week():
    h = Harness()
    h.send(cap_set(iso_week(T0), 1, T0))
    rid = paired(h)
    h.send(arrival("A2", T0 + 2 * HOUR))
    ready_applicant(h, "P2", T0 + 2 * HOUR)
    assert len(h.requests()) == 1
    h.send(answer(rid, T0 + DAY, decision="refused", reason_code="not_known"))
    # the refused pair's seat P1 re-pairs with A2 in the freed place; P2 still waits
    reqs = h.instructions("RequestReturn")
    assert [r["arrival_id"] for r in reqs] == ["A1", "A2"]
    assert h.balance(iso_week(T0))["pairs_formed"] == 1
    assert h.balance(iso_week(T0))["returns_refused"] == 1


def test_jr_after_request_holds_then_dismissal_lifts():
    h = Harness()
    rid = paired(h)
    h.send(casework("LegalChallengeFiled", "A1", T0 + DAY, challenge_id="J1", kind="judicial_review"))
    assert h.decisions(rid, "held") and h.alerts("removal_on_hold")
    assert h.instructions("WithdrawReturn") == []
    h.send(casework("LegalChallengeDecided", "A1", T0 + 2 * DAY, challenge_id="J1", outcome="dismissed"))
    assert h.decisions(rid, "hold_lifted")
    h.send(answer(rid, T0 + 3 * DAY))
    h.send(executed(rid, T0 + 4 * DAY))
    assert h.alerts("executed_despite_hold") == []
    assert h.instructions("OfferAdmission")


def test_upheld_jr_after_request_withdraws_and_frees_the_place():
    h = Harness()
    rid = paired(h)
    h.send(casework("LegalChallengeFiled", "A1", T0 + DAY, challenge_id="J1", kind="judicial_review"))
    h.send(casework("LegalChallengeDecided", "A1", T0 + 2 * DAY, challenge_id="J1", outcome="upheld"))
    [w] = h.instructions("WithdrawReturn")
    assert w["request_id"] == rid
    assert h.balance(iso_week(T0))["pairs_formed"] == 0


def test_hold_still_open_after_ninety_days_withdraws():
    h = Harness()
    rid = paired(h)
    h.send(casework("ProtectionClaimLodged", "A1", T0 + DAY, claim_id="C1", kind="trafficking"))
    h.send(answer(rid, T0 + 2 * DAY))
    h.send(tick(T0 + 91 * DAY))
    [w] = h.instructions("WithdrawReturn")
    assert w["reason_code"] == "three_month_limit"


def test_executed_while_on_hold_raises_a_critical_alert():
    h = Harness()
    rid = paired(h)
    h.send(casework("LegalChallengeFiled", "A1", T0 + DAY, challenge_id="J1", kind="injunction"))
    h.send(executed(rid, T0 + 2 * DAY))
    [a] = h.alerts("executed_despite_hold")
    assert a["severity"] == "critical"
    assert h.balance(iso_week(T0))["returns_executed"] == 1


def test_failed_return_queues_again_inside_the_window_and_absconding_blocks():
    h = Harness()
    rid = paired(h)
    h.send(answer(rid, T0 + DAY))
    h.send(failed(rid, T0 + 2 * DAY, reason="absconded"))
    assert "absconded" in h.decisions("A1", "blocked")[-1]["reasons"]
    h.send(casework("PersonDetained", "A1", T0 + 3 * DAY))
    reqs = h.instructions("RequestReturn")
    assert [r["arrival_id"] for r in reqs] == ["A1", "A1"] and reqs[0]["request_id"] != reqs[1]["request_id"]


def test_reentrants_first_then_oldest_landing():
    h = Harness()
    rid = paired(h)
    h.send(answer(rid, T0 + DAY))
    h.send(executed(rid, T0 + 2 * DAY))
    h.send(arrival("B-old", T0 + 3 * DAY, landed_at=T0 + 3 * DAY))
    h.send(arrival("A1-again", T0 + 4 * DAY, person="A1", asylum_claimed=True))
    assert h.instructions("RecordBan")[0]["arrival_id"] == "A1-again"
    ready_applicant(h, "P2", T0 + 5 * DAY)
    assert h.instructions("RequestReturn")[-1]["arrival_id"] == "A1-again"


def test_same_events_in_the_same_order_give_the_same_pairs():
    docs = [arrival(f"A{i}", T0 + i * MINUTE) for i in range(12)]
    for i in range(8):
        docs += [eoi(f"P{i}", T0 + HOUR + i * MINUTE, nationality="AFG" if i % 3 == 0 else "SYR"),
                 vetted(f"P{i}", T0 + HOUR + i * MINUTE)]

    def run():
        h = Harness()
        for d in docs:
            h.send(d)
        return h.instructions("RequestReturn"), h.decisions(decision="paired")

    assert run() == run()
    requests, _ = run()
    assert [r["arrival_id"] for r in requests] == [f"A{i}" for i in range(8)]
