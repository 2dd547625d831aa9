"""Return-side rules through the real services, driven only through the contract's topics."""
import pytest

from shared import topics as T
from shared.timeutil import iso_week
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration


async def pair_one(client, observer, arrival_id="A1", app="P1", at=T0):
    await client.publish(T.BORDER_ARRIVALS, f.arrival(arrival_id, at))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=arrival_id)
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at + HOUR))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=arrival_id)
    return req["request_id"]


async def test_blocker_holds_back_the_request_and_releases_it(house, client, observer):
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0, asylum_claimed=True))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="blocked")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + HOUR))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="eligible")
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS) == []
    await client.publish(T.CASEWORK_UPDATES, f.casework("AsylumClaimDecided", "A1", T0 + DAY, outcome="inadmissible"))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")


async def test_no_request_on_day_fifteen(house, client, observer):
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0, claimed_minor=True))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="blocked")
    await client.publish(T.CASEWORK_UPDATES, f.casework("AgeAssessed", "A1", T0 + 14 * DAY + MINUTE,
                                                        assessed_minor=False))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="ineligible")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + 15 * DAY))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + 15 * DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="eligible")
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS) == []
    [d] = observer.events(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="ineligible")
    assert d["reasons"] == ["request_window_expired"]


async def test_reply_on_day_twenty_raises_overdue_first(house, client, observer):
    rid = await pair_one(client, observer)
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, T0 + HOUR + 20 * DAY))
    [accepted] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    [overdue] = await observer.wait_for(T.OPS_ALERTS, "Alert", kind="reply_overdue", subject_ref=rid)
    assert overdue["occurred_at"] == accepted["occurred_at"]  # fired by the reply that moved time


async def test_silence_until_day_twenty_eight_lapses_and_repairs(house, client, observer):
    rid = await pair_one(client, observer)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", T0 + 20 * DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="eligible")
    await client.publish(T.OPS_CONTROL, f.tick(T0 + HOUR + 28 * DAY))
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="reply_lapsed", subject_ref=rid)
    [again] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    assert again["request_id"] != rid
    paired = observer.events(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="paired")
    assert len(paired) == 2


async def test_jr_after_request_holds_dismissal_lifts(house, client, observer):
    rid = await pair_one(client, observer)
    await client.publish(T.CASEWORK_UPDATES, f.casework("LegalChallengeFiled", "A1", T0 + DAY,
                                                        challenge_id="J1", kind="judicial_review"))
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="removal_on_hold", subject_ref=rid)
    await client.publish(T.CASEWORK_UPDATES, f.casework("LegalChallengeDecided", "A1", T0 + 2 * DAY,
                                                        challenge_id="J1", outcome="dismissed"))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="hold_lifted")
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequestWithdrawn") == []


async def test_upheld_jr_withdraws_the_request_and_frees_the_place(house, client, observer):
    week = iso_week(T0)
    await client.publish(T.OPS_CONTROL, f.cap_set(week, 1, T0 - HOUR))
    rid = await pair_one(client, observer)
    await client.publish(T.CASEWORK_UPDATES, f.casework("LegalChallengeFiled", "A1", T0 + DAY,
                                                        challenge_id="J1", kind="injunction"))
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="removal_on_hold")
    await client.publish(T.CASEWORK_UPDATES, f.casework("LegalChallengeDecided", "A1", T0 + 2 * DAY,
                                                        challenge_id="J1", outcome="upheld"))
    [w] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequestWithdrawn", request_id=rid)
    assert w["reason_code"] == "legal_challenge_upheld"
    await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", week=week, pairs_formed=0)
    # the freed place takes the next pair in the same week
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", T0 + 3 * DAY))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    balances = observer.events(T.OPS_BALANCE, "WeeklyBalance", week=week)
    assert max(b["pairs_formed"] for b in balances) <= 1
