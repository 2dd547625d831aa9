"""Admission side, enforcement, operator controls and rebuilding from the topics, through the
real services and only the contract's topics."""
import pytest
from redis.asyncio import Redis

from shared import topics as T
from shared.timeutil import iso_week
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration
WEEK = iso_week(T0)


async def applicant(client, app, at, **kw):
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at, **kw))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at, person=kw.get("person")) if "person" in kw
                         else f.vetted(app, at))


async def test_priority_beats_age_of_application(house, client, observer):
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P-old", T0, submitted_at=T0 - 60 * DAY))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P-old", T0))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P-afg", T0, nationality="AFG"))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P-afg", T0))
    await observer.wait_for(T.OPS_AUDIT, "Decision", decision="eligible", count=2)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + HOUR))
    paired = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P-afg", decision="paired")
    assert "priority_nationality" in paired[0]["reasons"]
    assert not observer.events(T.OPS_AUDIT, "Decision", subject_ref="P-old", decision="paired")


async def test_family_of_three_waits_for_three_and_is_offered_after_three_returns(house, client, observer):
    await client.publish(T.OPS_CONTROL, f.cap_set(WEEK, 3, T0 - HOUR))
    for m in ("F1", "F2", "F3"):
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(m, T0, family="FAM-1"))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(m, T0))
    await observer.wait_for(T.OPS_AUDIT, "Decision", decision="eligible", count=3)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + MINUTE))
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", T0 + 2 * MINUTE))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="eligible")
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS) == []
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A3", T0 + 3 * MINUTE))
    reqs = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=3)
    rids = [r["request_id"] for r in reqs]
    for i, rid in enumerate(rids):
        await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, T0 + DAY + i * MINUTE))
    await observer.wait_for(T.OPS_AUDIT, "Decision", decision="accepted", count=3)
    for i, rid in enumerate(rids[:2]):
        await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rid, T0 + 2 * DAY + i * MINUTE))
    await observer.wait_for(T.OPS_AUDIT, "Decision", decision="executed", count=2)
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_ADMISSION_NOTICES) == []
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rids[2], T0 + 3 * DAY))
    offers = await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", count=3)
    assert sorted(o["application_id"] for o in offers) == ["F1", "F2", "F3"]
    assert {o["family_group_ref"] for o in offers} == {"FAM-1"}


async def test_applicant_who_crossed_by_boat_is_refused(house, client, observer):
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0, person="X"))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + DAY))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + DAY, person="X"))
    [d] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="refused_admission")
    assert d["reasons"] == ["prior_irregular_entry"]


async def returned(client, observer, arrival_id, app, at, person):
    await client.publish(T.BORDER_ARRIVALS, f.arrival(arrival_id, at, person=person))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=arrival_id)
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=arrival_id)
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(req["request_id"], at + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=req["request_id"], decision="accepted")
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(req["request_id"], at + 2 * DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=req["request_id"], decision="executed")
    return req["request_id"]


async def test_returned_person_arriving_again_gets_one_ban_and_goes_first(house, client, observer):
    rid = await returned(client, observer, "A1", "P1", T0, person="RET")
    await client.publish(T.BORDER_ARRIVALS, f.arrival("B-older", T0 + 3 * DAY))
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1-again", T0 + 4 * DAY, person="RET", asylum_claimed=True))
    [ban] = await observer.wait_for(T.ENFORCEMENT_BANS, "AsylumBanRecorded")
    assert ban["biometric_id"] == f.bio("RET") and ban["returned_request_id"] == rid and ban.key == f.bio("RET")
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="reentry_detected", subject_ref="A1-again")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P2", T0 + 5 * DAY))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P2", T0 + 5 * DAY))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1-again")
    assert not observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="B-older")
    # and a third arrival of the same person: still one ban record
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1-third", T0 + 6 * DAY, person="RET"))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1-third", decision="banned")
    assert len(observer.events(T.ENFORCEMENT_BANS)) == 1


async def test_cap_lowered_mid_week_stops_new_pairs(house, client, observer):
    for i in range(2):
        await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{i}", T0 + i * MINUTE))
        await applicant(client, f"P{i}", T0 + i * MINUTE)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=2)
    await client.publish(T.OPS_CONTROL, f.cap_set(WEEK, 1, T0 + HOUR))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=WEEK, decision="cap_set")
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A9", T0 + 2 * HOUR))
    await applicant(client, "P9", T0 + 2 * HOUR)
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P9", decision="eligible")
    await observer.quiet(1.0)
    assert len(observer.events(T.LIAISON_UK_RETURN_REQUESTS)) == 2
    last = observer.events(T.OPS_BALANCE, "WeeklyBalance", week=WEEK)[-1]
    assert (last["cap"], last["pairs_formed"]) == (1, 2)


async def test_pause_and_resume(house, client, observer):
    await client.publish(T.OPS_CONTROL, f.paused(T0))
    await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", admissions_paused=True)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + MINUTE))
    await applicant(client, "P1", T0 + MINUTE)
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P1", decision="eligible")
    await observer.quiet(1.0)
    assert observer.events(T.LIAISON_UK_RETURN_REQUESTS) == []
    await client.publish(T.OPS_CONTROL, f.resumed(T0 + HOUR))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")


async def test_redis_flushed_mid_run_is_rebuilt_and_the_figures_come_out_the_same(house, client, observer):
    # phase 1: three pairs, all returned and offered; one of the returned comes back later
    rids = [await returned(client, observer, f"A{i}", f"P{i}", T0 + i * HOUR, person=f"H{i}") for i in range(3)]
    await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", count=3)
    redis = Redis.from_url(house.redis_url)
    await redis.flushall()
    await redis.aclose()
    # phase 2: a duplicate of an old event, a re-entry, new applicants
    old = f.answer(rids[0], T0 + DAY)
    await client.publish(T.LIAISON_FR_DECISIONS, old)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A0-again", T0 + 4 * DAY, person="H0"))
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A9", T0 + 4 * DAY + MINUTE))
    for i in (7, 8):
        await applicant(client, f"P{i}", T0 + 4 * DAY + HOUR)
    reqs = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=5)
    assert {r["arrival_id"] for r in reqs[3:]} == {"A0-again", "A9"}
    await observer.wait_for(T.ENFORCEMENT_BANS, "AsylumBanRecorded")
    await observer.quiet(1.5)
    last = observer.events(T.OPS_BALANCE, "WeeklyBalance", week=WEEK)[-1]
    assert (last["pairs_formed"], last["returns_requested"], last["returns_accepted"], last["returns_executed"],
            last["admissions_offered"], last["reentries_detected"], last["cumulative_returns_executed"],
            last["cumulative_admissions_offered"]) == (5, 5, 3, 3, 3, 1, 3, 3)
    assert len(observer.events(T.ENFORCEMENT_BANS)) == 1
    assert len(observer.events(T.LIAISON_UK_ADMISSION_NOTICES)) == 3
