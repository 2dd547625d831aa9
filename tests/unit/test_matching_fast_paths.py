"""Matching's fast paths give what the plain ways give, to the byte (hypothesis).

- `derived_id` / `derived_id_str` (SHA-1 directly) and `uuid.uuid5` of the same name;
- a record's generated `to_dict` and dumping each field with the plain recursive dump;
- the wire bytes of an outbound event and its validated model's `model_dump_json`;
- `week_of` (the last week's bounds remembered) and `iso_week`;
- and everything the service publishes over generated histories is its model's own
  serialisation of a valid model.
"""
from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import TypeAdapter

from services.matching import wire
from services.matching.case import Case
from services.matching.ledger import Ledger
from services.matching.pair import Pair
from services.matching.seat import Seat
from services.matching.week import COUNTS, Week, week_of
from shared.events.internal import Instruction
from shared.events.outbound import Alert, Decision, WeeklyBalance
from shared.ids import NAMESPACE, derived_id, derived_id_str
from shared import topics
from shared.timeutil import LONDON, iso_week
from tests.support import factory as f
from tests.unit.harness import Wired
from tests.unit.test_matching_properties import history, make_doc, requested

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
PART = st.one_of(TEXT, st.integers(-5, 10**6), st.uuids())
# pydantic's own aware datetimes (its TzInfo), fixed offsets, UTC and Europe/London
OFFSET = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
ZONE = st.one_of(st.just(timezone.utc), st.just(LONDON), OFFSET)
INSTANT = st.builds(lambda naive, tz, fold: naive.replace(tzinfo=tz, fold=fold),
                    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31)), ZONE,
                    st.integers(0, 1))
PARSED = INSTANT.map(lambda dt: TypeAdapter(datetime).validate_python(dt.isoformat()))
WHEN = st.one_of(INSTANT, PARSED)


# ---- ids ---------------------------------------------------------------------------------

def reference_id(cause: object, *parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join([str(cause), *(str(p) for p in parts)]))


@settings(max_examples=500)
@given(st.one_of(TEXT, st.uuids()), st.lists(PART, max_size=5))
def test_derived_ids_are_uuid5_to_the_bit(cause, parts):
    expected = reference_id(cause, *parts)
    got = derived_id(cause, *parts)
    assert got == expected and got.int == expected.int and hash(got) == hash(expected)
    assert str(got) == str(expected) == derived_id_str(cause, *parts)
    assert (got.version, got.variant, got.is_safe) == (5, uuid.RFC_4122, expected.is_safe)
    assert uuid.UUID(str(got)) == got


def test_a_name_utf8_cannot_encode_fails_as_uuid5_does():
    with pytest.raises(UnicodeEncodeError):
        reference_id("\ud800")
    with pytest.raises(UnicodeEncodeError):
        derived_id("\ud800")
    with pytest.raises(UnicodeEncodeError):
        derived_id_str("x", "\udfff")


# ---- records -----------------------------------------------------------------------------

def reference_dump(value: Any) -> Any:
    """The record dump as it was: each field, recursively."""
    if type(value) in (str, int, bool, float, type(None)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: reference_dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [reference_dump(v) for v in value]
    return value


def reference_record(obj: Any) -> dict:
    return {f.name: reference_dump(getattr(obj, f.name)) for f in fields(obj)}


IDS = st.lists(TEXT, max_size=4)
CLAIMS = st.dictionaries(TEXT, st.sampled_from(["open", "refused", "upheld"]), max_size=3)
MAYBE = st.none() | TEXT
records = st.one_of(
    st.builds(Case, arrival_id=TEXT, landed_at=WHEN, departed_from=TEXT, claimed_minor=st.booleans(),
              asylum_claimed=st.booleans(), recorded_at=st.none() | WHEN, same_person=IDS,
              reentrant=st.booleans(), returned_request_id=MAYBE, assessed_minor=st.none() | st.booleans(),
              asylum_outcome=MAYBE, protection_claims=CLAIMS, challenges=CLAIMS, absconded=st.booleans(),
              status=TEXT, request_id=MAYBE, executed_request_id=MAYBE, executed_at=st.none() | WHEN,
              on_hold=st.booleans(), closed_reason=MAYBE, last_reasons=IDS),
    st.builds(Seat, application_id=TEXT, family_group_ref=MAYBE, nationality=TEXT, date_of_birth=st.dates(),
              located_in_france_verified=st.booleans(), submitted_at=WHEN, family_group_size=st.none() | st.integers(),
              vetting=MAYBE, refusals=IDS, status=TEXT, request_id=MAYBE, head=st.booleans(), last_reasons=IDS),
    st.builds(Pair, request_id=TEXT, arrival_id=TEXT, application_id=MAYBE, week=TEXT, formed_at=WHEN,
              seq=st.integers(), answer=MAYBE, executed=st.booleans(), broken=MAYBE,
              overdue_alerted=st.booleans(), offered=st.booleans()),
    st.builds(Week, week=TEXT, cap=st.none() | st.integers(), live_pairs=st.integers(),
              **{name: st.integers(0, 10**6) for name in COUNTS}),
    st.builds(Ledger, now=st.none() | WHEN, paused=st.booleans(), cumulative_returns_executed=st.integers(),
              cumulative_admissions_offered=st.integers(), imbalance_alerted=st.booleans(), seq=st.integers()),
)


@settings(max_examples=300)
@given(records)
def test_a_record_is_what_dumping_each_field_gives(record):
    got, expected = record.to_dict(), reference_record(record)
    assert got == expected
    assert list(got) == list(expected)
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
    # and the lists and dicts are copies, as before: the record does not share the aggregate's
    for name, value in got.items():
        if isinstance(value, (list, dict)):
            assert value is not getattr(record, name)


# ---- the wire ----------------------------------------------------------------------------

REASONS = st.lists(TEXT, max_size=4)


@settings(max_examples=300)
@given(TEXT, WHEN, TEXT, TEXT, REASONS, TEXT, TEXT)
def test_a_decision_on_the_wire_is_its_model_serialised(cause, now, subject, decision, reasons, version, part):
    event_id = derived_id_str(cause, part)
    values = dict(event_id=event_id, occurred_at=now, producer="oioo-matching", subject_ref=subject,
                  decision=decision, reasons=reasons, rule_version=version, caused_by=cause)
    assert wire.DECISION(**values) == Decision(**values).to_json()


@settings(max_examples=200)
@given(TEXT, WHEN, st.sampled_from(["info", "warning", "critical"]), TEXT, TEXT, TEXT)
def test_an_alert_on_the_wire_is_its_model_serialised(cause, now, severity, kind, subject, message):
    event_id = derived_id_str(cause, "alert", kind, subject)
    values = dict(event_id=event_id, occurred_at=now, producer="oioo-matching", alert_id=event_id, kind=kind,
                  severity=severity, subject_ref=subject, message=message)
    assert wire.ALERT(**values) == Alert(**values).to_json()


@settings(max_examples=200)
@given(TEXT, WHEN, st.dates(min_value=date(2001, 1, 1), max_value=date(2099, 12, 1)),
       st.lists(st.integers(0, 10**9), min_size=len(COUNTS) + 4, max_size=len(COUNTS) + 4), st.booleans())
def test_a_weekly_balance_on_the_wire_is_its_model_serialised(cause, now, day, numbers, paused):
    week = Week(week=f"{day.isocalendar()[0]}-W{day.isocalendar()[1]:02d}", cap=numbers[0], live_pairs=numbers[1],
                **dict(zip(COUNTS, numbers[4:])))
    figures = {**week.figures(50), "cumulative_returns_executed": numbers[2],
               "cumulative_admissions_offered": numbers[3], "admissions_paused": paused}
    event_id = derived_id_str(cause, "balance", week.week)
    values = dict(event_id=event_id, occurred_at=now, producer="oioo-matching", **figures)
    assert wire.BALANCE(**values) == WeeklyBalance(**values).to_json()


instructions = st.one_of(
    st.fixed_dictionaries({"kind": st.just("RequestReturn"), "request_id": TEXT, "arrival_id": TEXT,
                           "reply_due_by": TEXT, "week": TEXT}),
    st.fixed_dictionaries({"kind": st.just("WithdrawReturn"), "request_id": TEXT, "reason_code": TEXT}),
    st.fixed_dictionaries({"kind": st.just("OfferAdmission"), "application_id": TEXT, "family_group_ref": MAYBE,
                           "paired_request_ids": REASONS, "week": TEXT, "visa_valid_until": TEXT}),
    st.fixed_dictionaries({"kind": st.just("RecordBan"), "arrival_id": TEXT, "returned_request_id": TEXT}),
)


@settings(max_examples=200)
@given(TEXT, WHEN, TEXT, instructions)
def test_an_instruction_on_the_wire_is_its_model_serialised(cause, now, version, data):
    values = dict(instruction_id=derived_id_str(cause, "instruction"), occurred_at=now.isoformat(), caused_by=cause,
                  rule_version=version, **data)
    assert wire.INSTRUCTION(**values) == Instruction(**values).model_dump_json().encode()


# ---- weeks -------------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.lists(WHEN, min_size=1, max_size=20), st.integers(0, 3))
def test_the_week_of_an_instant_is_its_london_iso_week(instants, spread):
    # in time order (the remembered week is hit), out of order, and around the week's edges
    edges = [week_start + timedelta(microseconds=d) for week_start in
             (datetime.fromisocalendar(*t.astimezone(LONDON).isocalendar()[:2], 1).replace(tzinfo=LONDON)
              for t in instants[:3]) for d in (-1, 0, 1)]
    for instant in sorted(instants) + instants + edges + [t + timedelta(days=7 * spread) for t in instants]:
        assert week_of(instant) == iso_week(instant)


# ---- what the service publishes ------------------------------------------------------------

MODELS = {topics.OPS_AUDIT: Decision, topics.OPS_ALERTS: Alert, topics.OPS_BALANCE: WeeklyBalance,
          topics.MATCHING_INSTRUCTIONS: Instruction}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history)
def test_what_matching_publishes_is_its_models_serialisation(steps):
    wired, now, request_ids, published = Wired(), f.T0, [], set()
    for s, hours in steps:
        now += timedelta(hours=hours)
        for doc in make_doc(s, now, request_ids):
            out = wired.send(doc)
            request_ids += requested(out)
            for topic, _, value in out:
                model = MODELS[topic]
                assert model.model_validate_json(value).model_dump_json().encode() == value
                published.add(topic)
    assert topics.OPS_AUDIT in published
