"""Matching judged by event time, through the real services on the real broker and Redis:
late facts, the 90-day hold limit, counts in the event's own week, and families that
declare their size."""
from datetime import datetime, timezone

import pytest

from shared import topics as T
from shared.timeutil import iso_week
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration

SEP5 = datetime(2025, 9, 5, 10, 0, tzinfo=timezone.utc)
SEP19 = datetime(2025, 9, 19, 11, 0, tzinfo=timezone.utc)
OCT18 = datetime(2025, 10, 18, 4, 0, tzinfo=timezone.utc)


async def ready_applicant(client, app, at, **kw):
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at, **kw))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at))


async def test_a_return_reported_after_the_person_came_back_makes_them_a_reentrant(house, client, observer):
    await ready_applicant(client, "P1", SEP5 - HOUR)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", SEP5, person="X"))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    rid = req["request_id"]
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, SEP5 + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    # returned on 19 Sep; an older arrival waits; the same person crosses again on 18 Oct and
    # that is recorded before the escorts' upload reaches the system
    await client.publish(T.BORDER_ARRIVALS, f.arrival("B-old", OCT18 - 2 * DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="B-old", decision="eligible")
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", OCT18, person="X", asylum_claimed=True))
    [blocked] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="blocked")
    assert blocked["reasons"] == ["asylum_claim_undecided"]
    late = f.executed(rid, SEP19)
    await client.publish(T.TRANSFERS_MOVEMENTS, late)
    [ban] = await observer.wait_for(T.ENFORCEMENT_BANS, "AsylumBanRecorded", biometric_id=f.bio("X"))
    assert ban["returned_request_id"] == rid
    [reentry] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="reentry_detected")
    assert reentry["caused_by"] == late["event_id"]
    [eligible] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="eligible")
    assert eligible["caused_by"] == late["event_id"] and "reentrant_after_return" in eligible["reasons"]
    # first in line: the next seat goes to the re-entrant, not to the older arrival
    await ready_applicant(client, "P2", OCT18 + HOUR)
    [again] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P2", decision="paired")
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="B-old") == []


async def test_a_hold_opening_after_day_ninety_is_withdrawn_at_once(house, client, observer):
    await ready_applicant(client, "P1", T0)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + MINUTE))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    rid = req["request_id"]
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, T0 + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    await client.publish(T.OPS_CONTROL, f.tick(T0 + 91 * DAY))
    challenge = f.casework("LegalChallengeFiled", "A1", T0 + 92 * DAY, challenge_id="J1", kind="judicial_review")
    await client.publish(T.CASEWORK_UPDATES, challenge)
    [w] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequestWithdrawn", request_id=rid)
    assert w["reason_code"] == "three_month_limit"
    [closed] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="ineligible")
    assert closed["reasons"] == ["three_month_limit"] and closed["caused_by"] == challenge["event_id"]


async def test_a_late_sunday_return_counts_in_its_own_week(house, client, observer):
    await ready_applicant(client, "P1", T0)  # Monday 1 Sep
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + MINUTE))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    rid = req["request_id"]
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, T0 + HOUR))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    monday = T0 + 7 * DAY + 3 * HOUR
    await client.publish(T.OPS_CONTROL, f.tick(monday))
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A-next", monday))  # something in the new week
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A-next", decision="eligible")
    sunday = T0 + 6 * DAY + 8 * HOUR  # Sunday 7 Sep, the escorts' upload comes on Monday
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rid, sunday))
    [balance] = await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", week=iso_week(sunday), returns_executed=1)
    assert balance["pairs_formed"] == 1 and balance["cumulative_returns_executed"] == 1
    await observer.quiet(1.0)
    assert iso_week(sunday) != iso_week(monday)
    assert all(b["returns_executed"] == 0
               for b in observer.events(T.OPS_BALANCE, "WeeklyBalance", week=iso_week(monday)))


async def test_a_family_of_three_is_not_paired_until_the_third_is_ready(house, client, observer):
    for i in range(4):
        await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{i}", T0 + i * MINUTE))
    for m in ("F1", "F2"):
        await client.publish(T.ADMISSIONS_APPLICATIONS,
                             f.eoi(m, T0 + HOUR, family="FAM", nationality="AFG") | {"family_group_size": 3})
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(m, T0 + HOUR))
    for m in ("F1", "F2"):
        [d] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=m, decision="blocked",
                                      reasons=["awaiting_family_members"])
    await client.publish(T.ADMISSIONS_APPLICATIONS,
                         f.eoi("F3", T0 + 2 * HOUR, family="FAM", nationality="AFG", dob="2015-01-01"))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="F3", decision="blocked")
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested") == []
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("F3", T0 + 3 * HOUR))
    reqs = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=3)
    assert sorted(r["arrival_id"] for r in reqs) == ["A0", "A1", "A2"]
    for m in ("F1", "F2", "F3"):
        [paired] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=m, decision="paired")
        assert "family_group_of_3" in paired["reasons"]
