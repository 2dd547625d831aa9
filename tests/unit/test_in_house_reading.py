"""The internal topics' envelopes read once (shared/events/in_house.py) against the reference
reading (envelope from JSON, then the event from its dict): the same envelope, the same event,
and for a bad record the same kind of error, on generated records good and bad (hypothesis)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError

from services.matching.app import BIOMETRIC_EVENTS, NO_BIOMETRIC, _in_house
from shared.events.in_house import read_accepted, read_screened
from shared.events.inbound import ANY_IN_HOUSE
from shared.events.internal import AcceptedEvent, ScreenedEvent
from tests.support import factory as f
from tests.unit.harness import in_house


def reference_accepted(raw):
    envelope = AcceptedEvent.model_validate_json(raw)
    return (envelope.source_topic, envelope.source_partition, envelope.source_offset, envelope.event,
            ANY_IN_HOUSE.validate_python(envelope.event))


def reference_screened(raw):
    # what matching did before: the envelope, then the event with the stripped biometric filled in
    envelope = ScreenedEvent.model_validate_json(raw)
    document = dict(envelope.event)
    if document.get("event_type") in BIOMETRIC_EVENTS:  # an unhashable type raises TypeError, as it did
        document.setdefault("biometric_id", NO_BIOMETRIC)
    return envelope.source_topic, envelope.screening, ANY_IN_HOUSE.validate_python(document)


def outcome(read, raw):
    try:
        return "ok", tuple(read(raw))
    except Exception as exc:  # noqa: BLE001 - the kind of error is what is compared
        return "raised", type(exc)


EVENTS = [in_house(d) for d in (
    f.arrival("A-1", f.T0), f.eoi("P-1", f.T0), f.vetted("P-1", f.T0), f.withdrawn("P-1", f.T0),
    f.casework("AsylumClaimDecided", "A-1", f.T0, outcome="withdrawn"), f.answer("R-1", f.T0),
    f.executed("R-1", f.T0 + timedelta(days=1)), f.casework("PersonDetained", "A-1", f.T0))]
ODD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                st.text(max_size=8), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                            st.integers(), max_size=2))


@st.composite
def event_doc(draw) -> dict:
    doc = dict(draw(st.sampled_from(EVENTS)))
    for _ in range(draw(st.integers(0, 2))):  # sometimes spoilt: a field changed, dropped or added
        how = draw(st.sampled_from(["change", "drop", "add"]))
        name = draw(st.sampled_from(sorted(doc) + ["extra"]))
        if how == "drop":
            doc.pop(name, None)
        else:
            doc[name] = draw(ODD)
    return doc


@st.composite
def envelope_bytes(draw, fields: dict) -> bytes:
    doc = {name: draw(value) for name, value in fields.items()}
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.sampled_from(["change", "drop", "add", "none"]))
        name = draw(st.sampled_from(sorted(doc) + ["extra"]))
        if how == "drop":
            doc.pop(name, None)
        elif how != "none":
            doc[name] = draw(ODD)
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    spoil = draw(st.sampled_from(["", "", "", "cut", "trail", "dup"]))
    if spoil == "cut":
        raw = raw[:draw(st.integers(0, max(0, len(raw) - 1)))]
    elif spoil == "trail":
        raw += b" x"
    elif spoil == "dup":  # a field written twice: the last one counts, in both readings
        raw = raw[:-1] + b', "source_topic": 7}'
    return raw


ACCEPTED = envelope_bytes({"source_topic": st.sampled_from(["border.arrivals.v1", "casework.updates.v1"]),
                           "source_partition": st.integers(0, 3), "source_offset": st.integers(0, 10**6),
                           "event": event_doc()})
SCREENING = st.one_of(st.just({}), st.fixed_dictionaries(
    {}, optional={"arrival_ids": st.lists(st.sampled_from(["A-1", "A-2"]), max_size=2),
                  "application_ids": st.lists(st.sampled_from(["P-1", 3]), max_size=2),
                  "report_ids": st.lists(st.text(max_size=3), max_size=1),
                  "person_bucket": st.none() | st.integers(0, 4095)}), ODD)
SCREENED = envelope_bytes({"source_topic": st.sampled_from(["border.arrivals.v1", "admissions.applications.v1"]),
                           "source_partition": st.none() | st.integers(0, 3), "source_offset": st.integers(0, 10**6),
                           "event": event_doc(), "screening": SCREENING})


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(ACCEPTED)
def test_an_accepted_event_reads_as_the_reference_reads_it(raw):
    assert outcome(read_accepted, raw) == outcome(reference_accepted, raw)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(SCREENED)
def test_a_screened_event_reads_as_the_reference_reads_it(raw):
    assert outcome(lambda r: read_screened(r, _in_house), raw) == outcome(reference_screened, raw)


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b"{}", b"not json", b'{"source_topic": "t", "event": NaN}', None])
def test_what_is_not_an_envelope_raises_as_before(raw):
    assert outcome(read_accepted, raw) == outcome(reference_accepted, raw)
    assert outcome(lambda r: read_screened(r, _in_house), raw) == outcome(reference_screened, raw)


def test_a_good_envelope_takes_the_one_pass_reading_and_a_bad_event_names_fields_not_values():
    secret = "Zebediah-Quist"
    event = {**EVENTS[0], "nationality": secret}
    raw = AcceptedEvent(source_topic="border.arrivals.v1", source_partition=0, source_offset=5,
                        event=event).model_dump_json().encode()
    with pytest.raises(ValidationError) as bad:
        read_accepted(raw)
    assert "nationality" in str(bad.value.errors(include_input=False)) and secret not in str(
        bad.value.errors(include_input=False))
    good = AcceptedEvent(source_topic="border.arrivals.v1", source_partition=0, source_offset=5,
                         event=EVENTS[0]).model_dump_json().encode()
    read = read_accepted(good)
    assert read.document == EVENTS[0] and read == reference_accepted(good)


@pytest.mark.parametrize("screening", [{"arrival_ids": [], "application_ids": [], "report_ids": []},
                                       {"arrival_ids": ["A-1"], "application_ids": [], "report_ids": []},
                                       {"arrival_ids": [], "application_ids": [], "report_ids": [], "x": []}, {}])
def test_a_screening_reads_as_the_reference_reads_it(screening):
    raw = json.dumps({"source_topic": "admissions.applications.v1", "event": EVENTS[2],
                      "screening": screening}).encode()
    assert outcome(lambda r: read_screened(r, _in_house), raw) == outcome(reference_screened, raw)
