"""The foundation, through the real services on the real broker and Redis, driven only
through the contract's topics."""
import base64
import json

import pytest

from shared import topics as T
from shared.signing import signed_headers
from shared.timeutil import iso_week
from tests.support.client import encode
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration
WEEK = iso_week(T0)


async def test_one_journey_from_boat_to_admission(house, client, observer):
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="eligible")
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + 2 * HOUR))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    assert req["week"] == WEEK and req["family_name"] == "Doe"
    rid = req["request_id"]
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, T0 + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rid, T0 + 2 * DAY))
    [offer] = await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", application_id="P1")
    assert offer["paired_request_ids"] == [rid]
    await client.publish(T.TRANSFERS_MOVEMENTS, f.admission_arrived("P1", T0 + 3 * DAY))
    await observer.wait_for(T.OPS_BALANCE, "WeeklyBalance", week=WEEK, admissions_arrived=1)
    last = observer.events(T.OPS_BALANCE, "WeeklyBalance", week=WEEK)[-1]
    assert (last["pairs_formed"], last["returns_requested"], last["returns_accepted"], last["returns_executed"],
            last["admissions_offered"], last["cumulative_returns_executed"],
            last["cumulative_admissions_offered"]) == (1, 1, 1, 1, 1, 1, 1)
    for d in ("paired", "executed", "offered", "admitted"):
        assert observer.events(T.OPS_AUDIT, "Decision", decision=d), d
    # no personal data on ops topics
    for e in observer.events():
        if e.topic.startswith("ops.") and e.topic != T.OPS_DEAD_LETTERS:
            blob = json.dumps(e)
            assert "Doe" not in blob and f.bio("A1") not in blob and f.bio("P1") not in blob


async def test_eighty_ready_pairs_in_a_week_with_cap_fifty_give_exactly_fifty(house, client, observer):
    for i in range(80):
        await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{i:03d}", T0 + i * MINUTE))
    for i in range(80):
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{i:03d}", T0 + 2 * HOUR))
        await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{i:03d}", T0 + 2 * HOUR))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=50)
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="cap_reached")
    await observer.quiet(2.0)
    assert len(observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")) == 50
    assert observer.events(T.OPS_BALANCE, "WeeklyBalance", week=WEEK)[-1]["pairs_formed"] == 50


async def test_every_event_twice_gives_the_same_outbound_events_as_once(house, client, observer):
    script = [(T.BORDER_ARRIVALS, f.arrival("A1", T0)), (T.BORDER_ARRIVALS, f.arrival("A2", T0 + MINUTE)),
              (T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + HOUR)),
              (T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + HOUR))]
    for topic, doc in script:
        await client.publish(topic, doc)
        await client.publish(topic, doc)
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")
    for doc in (f.answer(req["request_id"], T0 + DAY), f.executed(req["request_id"], T0 + 2 * DAY)):
        await client.publish(T.TRANSFERS_MOVEMENTS if doc["event_type"] == "ReturnExecuted" else T.LIAISON_FR_DECISIONS, doc)
        await client.publish(T.TRANSFERS_MOVEMENTS if doc["event_type"] == "ReturnExecuted" else T.LIAISON_FR_DECISIONS, doc)
    await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered")
    await observer.quiet(2.0)
    ids = [e["event_id"] for e in observer.events()]
    assert len(ids) == len(set(ids)), "an outbound event was published twice"
    assert len(observer.events(T.LIAISON_UK_RETURN_REQUESTS)) == 1
    assert len(observer.events(T.LIAISON_UK_ADMISSION_NOTICES)) == 1
    assert len(observer.events(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="eligible")) == 1
    assert observer.events(T.OPS_BALANCE, "WeeklyBalance")[-1]["returns_executed"] == 1


async def test_bad_input_is_dead_lettered_with_its_code_and_the_next_event_flows(house, client, observer):
    good = f.arrival("A1", T0)
    unknown = {**f.tick(T0), "event_type": "ArrivalRecorded"}  # not listed for ops.control.v1
    schema = {**f.arrival("A2", T0), "claimed_minor": "no"}
    await client.publish(T.BORDER_ARRIVALS, raw=b"{not json", key="A0")
    await client.publish(T.OPS_CONTROL, unknown)
    await client.publish(T.BORDER_ARRIVALS, schema)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A3", T0), headers={"x-signature": "00" * 32})
    foreign = f.arrival("A4", T0)  # signed with a valid key that is not allowed on this topic
    operators = house.keyring.get("ops-operators")
    await client.publish(T.BORDER_ARRIVALS, foreign, headers=signed_headers(operators, encode(foreign)))
    await client.publish(T.BORDER_ARRIVALS, good)
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="eligible")
    letters = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", count=5)
    codes = sorted(d["error_code"] for d in letters)
    assert codes == sorted(["not_json", "unknown_type", "schema", "signature", "unauthorised_producer"])
    schema_letter = next(d for d in letters if d["error_code"] == "schema")
    assert "claimed_minor" in schema_letter["error_detail"]
    assert json.loads(base64.b64decode(schema_letter["raw_value_b64"]))["arrival_id"] == "A2"
    assert not observer.events(T.OPS_AUDIT, "Decision", subject_ref="A2")
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="dead_letter", count=5)


async def test_one_arrival_is_followed_across_the_four_services_by_its_trace_id(house, client, observer):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("TP-1", T0))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("TP-1", T0))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="TP-1", decision="eligible")
    # the arrival comes last, so the pair forms on it: terminal -> intake -> enforcement ->
    # matching -> transfer -> France, one trace
    await client.publish(T.BORDER_ARRIVALS, f.arrival("TR-1", T0 + HOUR),
                         headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    request = (await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="TR-1"))[0]
    decision = (await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="TR-1"))[0]
    for seen in (request, decision):
        version, trace, parent, flags = seen.headers["traceparent"].decode().split("-")
        assert (version, trace, flags) == ("00", trace_id, "01") and parent != "00f067aa0ba902b7"
