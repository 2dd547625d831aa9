"""Admission side and enforcement rules through the exchange."""
from tests.support.factory import (DAY, HOUR, MINUTE, T0, answer, arrival, cap_set, eoi, executed,
                                   illegal_working, paused, resumed, tick, vetted, withdrawn)
from tests.unit.harness import Harness
from shared.timeutil import iso_week


def test_priority_nationality_beats_an_older_application():
    h = Harness()
    h.send(eoi("P-old", T0, nationality="SYR", submitted_at=T0 - 30 * DAY))
    h.send(vetted("P-old", T0))
    h.send(eoi("P-eri", T0 + MINUTE, nationality="ERI"))
    h.send(vetted("P-eri", T0 + MINUTE))
    h.send(arrival("A1", T0 + HOUR))
    assert h.decisions("P-eri", "paired") and not h.decisions("P-old", "paired")


def test_family_of_three_waits_for_three_places_and_is_offered_after_three_returns():
    h = Harness()
    h.send(cap_set(iso_week(T0), 3, T0))
    for m in ("F1", "F2", "F3"):
        h.send(eoi(m, T0, family="FAM", nationality="AFG", dob="2015-01-01" if m == "F3" else "1990-01-01"))
        h.send(vetted(m, T0))
    h.send(arrival("A1", T0 + MINUTE))
    h.send(arrival("A2", T0 + 2 * MINUTE))
    assert h.instructions("RequestReturn") == []
    h.send(arrival("A3", T0 + 3 * MINUTE))
    reqs = h.requests()
    assert sorted(reqs) == ["A1", "A2", "A3"]
    for i, rid in enumerate(reqs.values()):
        h.send(answer(rid, T0 + DAY + i * MINUTE))
    rids = list(reqs.values())
    h.send(executed(rids[0], T0 + 2 * DAY))
    h.send(executed(rids[1], T0 + 2 * DAY + MINUTE))
    assert h.instructions("OfferAdmission") == []
    h.send(executed(rids[2], T0 + 2 * DAY + 2 * MINUTE))
    assert sorted(o["application_id"] for o in h.instructions("OfferAdmission")) == ["F1", "F2", "F3"]


def test_a_family_that_does_not_fit_waits_and_the_next_that_fits_goes():
    h = Harness()
    h.send(cap_set(iso_week(T0), 2, T0))
    for m in ("F1", "F2", "F3"):
        h.send(eoi(m, T0, family="FAM", nationality="ERI"))
        h.send(vetted(m, T0))
    h.send(eoi("S1", T0 + MINUTE))
    h.send(vetted("S1", T0 + MINUTE))
    for i in range(3):
        h.send(arrival(f"A{i}", T0 + HOUR + i * MINUTE))
    assert h.decisions("S1", "paired") and not h.decisions("F1", "paired")


def test_applicant_who_crossed_by_boat_is_refused():
    h = Harness()
    h.send(arrival("A1", T0, person="X"))
    h.send(eoi("P1", T0 + DAY))
    h.send(vetted("P1", T0 + DAY, person="X"))
    assert h.decisions("P1", "refused_admission")[0]["reasons"] == ["prior_irregular_entry"]


def test_refusals_by_rule():
    h = Harness()
    h.send(eoi("P-minor", T0, dob="2012-01-01"))
    h.send(eoi("P-notfr", T0, verified=False))
    h.send(eoi("P-sec", T0))
    h.send(vetted("P-sec", T0, outcome="refused"))
    assert h.decisions("P-minor", "refused_admission")[0]["reasons"] == ["under_18_without_family_group"]
    assert h.decisions("P-notfr", "refused_admission")[0]["reasons"] == ["not_located_in_france"]
    assert h.decisions("P-sec", "refused_admission")[0]["reasons"] == ["security_refused"]


def test_withdrawal_after_pairing_hands_the_seat_to_the_next_ready_applicant():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(eoi("P1", T0))
    h.send(vetted("P1", T0))
    rid = h.requests()["A1"]
    h.send(eoi("P2", T0 + HOUR))
    h.send(vetted("P2", T0 + HOUR))
    h.send(withdrawn("P1", T0 + 2 * HOUR))
    assert h.decisions("P2", "paired")[0]["reasons"][-1] == f"request_{rid}"
    assert h.instructions("WithdrawReturn") == []


def test_withdrawal_with_nobody_ready_withdraws_the_request_and_requeues_the_case():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(eoi("P1", T0))
    h.send(vetted("P1", T0))
    h.send(withdrawn("P1", T0 + HOUR))
    assert h.instructions("WithdrawReturn")[0]["reason_code"] == "admission_side_dropped"
    assert h.balance(iso_week(T0))["pairs_formed"] == 0
    h.send(eoi("P2", T0 + 2 * HOUR))
    h.send(vetted("P2", T0 + 2 * HOUR))
    assert [r["arrival_id"] for r in h.instructions("RequestReturn")] == ["A1", "A1"]


def test_illegal_working_refuses_an_applicant_and_counts():
    h = Harness()
    h.send(eoi("P1", T0))
    h.send(vetted("P1", T0, person="W"))
    h.send(illegal_working("R1", T0 + HOUR, person="W"))
    assert h.alerts("illegal_working_match")
    assert h.decisions("P1", "refused_admission")[0]["reasons"] == ["illegal_working_in_uk"]
    assert h.balance(iso_week(T0))["illegal_working_matches"] == 1


def test_lowered_cap_stops_new_pairs_and_breaks_none():
    h = Harness()
    for i in range(3):
        h.send(arrival(f"A{i}", T0 + i * MINUTE))
        h.send(eoi(f"P{i}", T0 + i * MINUTE))
        h.send(vetted(f"P{i}", T0 + i * MINUTE))
    h.send(cap_set(iso_week(T0), 1, T0 + HOUR))
    h.send(arrival("A9", T0 + 2 * HOUR))
    h.send(eoi("P9", T0 + 2 * HOUR))
    h.send(vetted("P9", T0 + 2 * HOUR))
    assert len(h.requests()) == 3
    assert h.instructions("WithdrawReturn") == []
    assert h.balance(iso_week(T0))["pairs_formed"] == 3


def test_pause_stops_new_pairs_but_offers_go_out_and_resume_pairs_again():
    h = Harness()
    h.send(arrival("A1", T0))
    h.send(eoi("P1", T0))
    h.send(vetted("P1", T0))
    rid = h.requests()["A1"]
    h.send(paused(T0 + HOUR))
    h.send(arrival("A2", T0 + 2 * HOUR))
    h.send(eoi("P2", T0 + 2 * HOUR))
    h.send(vetted("P2", T0 + 2 * HOUR))
    assert len(h.requests()) == 1
    h.send(answer(rid, T0 + DAY))
    h.send(executed(rid, T0 + 2 * DAY))
    assert h.instructions("OfferAdmission")
    assert h.balance(iso_week(T0))["admissions_paused"] is True
    h.send(resumed(T0 + 3 * DAY))
    assert len(h.requests()) == 2


def test_new_week_opens_new_places():
    h = Harness()
    h.send(cap_set(iso_week(T0), 1, T0))
    for i in range(2):
        h.send(arrival(f"A{i}", T0 + i * MINUTE))
        h.send(eoi(f"P{i}", T0 + i * MINUTE))
        h.send(vetted(f"P{i}", T0 + i * MINUTE))
    assert len(h.requests()) == 1
    h.send(tick(T0 + 7 * DAY))  # next Monday
    reqs = h.instructions("RequestReturn")
    assert len(reqs) == 2 and reqs[1]["week"] == iso_week(T0 + 7 * DAY)


def test_imbalance_alert_when_offers_lag_executions():
    h = Harness(imbalance_margin=1)
    for i in range(3):
        h.send(arrival(f"A{i}", T0 + i * MINUTE))
        h.send(eoi(f"P{i}", T0 + i * MINUTE, family="FAM"))
    for i in range(3):
        h.send(vetted(f"P{i}", T0 + HOUR))
    rids = list(h.requests().values())
    for i, rid in enumerate(rids[:2]):
        h.send(executed(rid, T0 + DAY + i * MINUTE))
    assert h.alerts("imbalance")
