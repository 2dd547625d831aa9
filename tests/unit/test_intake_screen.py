"""Intake's screen(): the contract's checks in the contract's order, and no input that makes it
raise. Pure function, no broker."""
from __future__ import annotations

import json
from unittest import mock
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.intake import rules
from services.intake.rules import CODES, PERSONAL_FIELDS, Accepted, Rejected, screen, split_particulars
from shared import topics as T
from shared.events.inbound import ANY_INBOUND, subject_of
from shared.events.internal import AcceptedEvent, ArrivalParticulars
from shared.limits import JSON_SAFE_INT, MAX_DEPTH, MAX_STRING, MAX_VALUE_BYTES
from shared.signing import Keyring, signed_headers
from tests.support import factory as f
from tests.support.client import encode

KEYRING = Keyring.from_mapping({
    "terminals": {"secret": "terminal-secret", "topics": [T.BORDER_ARRIVALS]},
    "casework": {"secret": "casework-secret", "topics": [T.CASEWORK_UPDATES]},
    "portal": {"secret": "portal-secret", "topics": [T.ADMISSIONS_APPLICATIONS]},
    "liaison": {"secret": "liaison-secret", "topics": [T.LIAISON_FR_DECISIONS]},
    "escorts": {"secret": "escorts-secret", "topics": [T.TRANSFERS_MOVEMENTS]},
    "enforcement": {"secret": "enforcement-secret", "topics": [T.ENFORCEMENT_ILLEGAL_WORKING]},
    "operators": {"secret": "operators-secret", "topics": [T.OPS_CONTROL]},
})
INBOUND = tuple(T.INBOUND_EVENT_TYPES)
NOW = f.T0 + timedelta(days=30)  # intake's clock at receipt in these tests


def signed(topic: str, value: bytes) -> dict:
    return signed_headers(KEYRING.key_for_topic(topic), value)


def run(topic: str, value: bytes, *, sign: bool = True, headers: dict | None = None,
        received_at: datetime = NOW) -> Accepted | Rejected:
    hdrs = signed(topic, value) if sign else {}
    hdrs.update(headers or {})
    return screen(KEYRING, topic, hdrs, value, received_at=received_at)


def code(topic: str, value: bytes | dict, **kw) -> str:
    result = run(topic, value if isinstance(value, bytes) else encode(value), **kw)
    return "accepted" if isinstance(result, Accepted) else result.error_code


def nested(depth: int) -> bytes:
    """An arrival whose extra field holds arrays so deep that the value is `depth` deep."""
    body = encode(f.arrival("A1", f.T0))
    return body[:-1] + b',"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def one_good_event_per_topic() -> dict[str, dict]:
    return {
        T.BORDER_ARRIVALS: f.arrival("A1", f.T0),
        T.CASEWORK_UPDATES: f.casework("AgeAssessed", "A1", f.T0, assessed_minor=False),
        T.ADMISSIONS_APPLICATIONS: f.eoi("P1", f.T0),
        T.LIAISON_FR_DECISIONS: f.answer("R1", f.T0),
        T.TRANSFERS_MOVEMENTS: f.executed("R1", f.T0),
        T.ENFORCEMENT_ILLEGAL_WORKING: f.illegal_working("W1", f.T0, "A1"),
        T.OPS_CONTROL: f.cap_set("2025-W36", 10, f.T0),
    }


GOOD = one_good_event_per_topic()


# ---- examples: each limit, at and past its edge ---------------------------------------------

@pytest.mark.parametrize("topic", INBOUND)
def test_a_good_event_on_every_topic_is_accepted(topic):
    assert code(topic, GOOD[topic]) == "accepted"


def test_an_oversized_value_is_too_large_before_its_signature_is_looked_at():
    big = b"x" * (MAX_VALUE_BYTES + 1)
    assert code(T.BORDER_ARRIVALS, big, sign=False) == "too_large"
    assert code(T.BORDER_ARRIVALS, b"x" * MAX_VALUE_BYTES, sign=False) == "signature"
    padded = {**f.arrival("A1", f.T0), "vessel_ref": "v" * 800_000}
    assert code(T.BORDER_ARRIVALS, padded) == "too_large"


def test_deep_nesting_is_not_json_and_32_levels_are_still_json():
    assert code(T.BORDER_ARRIVALS, nested(MAX_DEPTH + 1)) == "not_json"
    assert code(T.BORDER_ARRIVALS, nested(MAX_DEPTH)) == "schema"  # parsed: the extra field is the fault
    assert code(T.BORDER_ARRIVALS, b"[" * 100_000) == "not_json"
    assert code(T.BORDER_ARRIVALS, b'{"a":' * 40_000 + b"1" + b"}" * 40_000) == "not_json"


def test_brackets_inside_strings_do_not_count_as_nesting():
    doc = {**f.arrival("A1", f.T0), "vessel_ref": '[[[[{{{{\\"' * 20}
    assert code(T.BORDER_ARRIVALS, doc) == "accepted"


@pytest.mark.parametrize("value", [b"[]", b'"text"', b"42", b"null", b"true", b"[{}]"])
def test_a_value_that_is_not_one_json_object_is_not_json(value):
    assert code(T.BORDER_ARRIVALS, value) == "not_json"


@pytest.mark.parametrize("value", [b"", b"{not json", b"\xff\xfe{}", b'{"a":1}{"b":2}',
                                   b'{"family_name":"\\ud800"}', b"\xef\xbb\xbf{}"])
def test_what_is_not_utf8_json_text_is_not_json(value):
    assert code(T.BORDER_ARRIVALS, value) == "not_json"


def test_a_lone_surrogate_escape_is_not_json_and_escaped_text_that_is_unicode_is_fine():
    body = encode(f.arrival("A1", f.T0))

    def with_name(escaped: bytes) -> bytes:  # the JSON text of the name begins with `escaped`
        return body.replace(b'"family_name":"', b'"family_name":"' + escaped, 1)

    for lone in (rb"\ud800", rb"\udfff", rb"x\ud83d", rb"\ude00\ud83d"):
        assert run(T.BORDER_ARRIVALS, with_name(lone)) == \
            Rejected("not_json", "value holds a lone surrogate escape, which is not Unicode text")
    for text in (rb"\ud83d\ude00", rb"\u00e9", rb"\\ud800", "é😀".encode()):  # a pair, é, a backslash
        assert isinstance(run(T.BORDER_ARRIVALS, with_name(text)), Accepted)


# Lone and paired surrogates, and what json.dumps escapes (with ensure_ascii, all of it but "u" and "a").
escapable = st.lists(st.sampled_from(["\ud800", "\udfff", "\ud83d\ude00", "😀", "\\", "u", "é", "\x00", '"', "a"]),
                     max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(INBOUND), name=st.sampled_from(["family_name", "reason", "x"]),
       text=escapable, ascii_only=st.booleans())
def test_screening_without_the_look_for_lone_surrogates_agrees_with_looking_every_time(topic, name, text, ascii_only):
    doc = {**GOOD[topic], name: text}
    value = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    fast = run(topic, value)
    with mock.patch.object(rules, "_LONE_SURROGATE_POSSIBLE", b""):  # b"" is in every value
        slow = run(topic, value)
    assert fast == slow


def test_a_string_over_1000_characters_is_schema_and_1000_is_fine():
    assert code(T.BORDER_ARRIVALS, {**f.arrival("A1", f.T0), "family_name": "é" * MAX_STRING}) == "accepted"
    assert code(T.BORDER_ARRIVALS, {**f.arrival("A1", f.T0), "family_name": "é" * (MAX_STRING + 1)}) == "schema"
    assert code(T.OPS_CONTROL, {**f.paused(f.T0), "reason": "r" * (MAX_STRING + 1)}) == "schema"
    assert code(T.TRANSFERS_MOVEMENTS, {**f.executed("R1", f.T0), "flight_ref": "F" * (MAX_STRING + 1)}) == "schema"


@pytest.mark.parametrize("field,value,expected", [
    ("landed_at", "9999-12-31T23:59:59+00:00", "schema"),
    ("landed_at", "2101-01-01T00:00:00+00:00", "schema"),
    ("landed_at", "2100-12-31T23:59:59+00:00", "accepted"),
    ("landed_at", "1899-12-31T23:59:59+00:00", "schema"),
    ("landed_at", "0001-01-01T00:00:00+01:00", "schema"),
    ("date_of_birth", "1899-12-31", "schema"),
    ("date_of_birth", "1900-01-01", "accepted"),
    ("date_of_birth", "2101-01-01", "schema"),
    ("occurred_at", "9999-12-31T23:59:59-01:00", "schema"),
    ("occurred_at", "1850-06-01T00:00:00+00:00", "schema"),
])
def test_dates_and_times_outside_1900_to_2100_are_schema(field, value, expected):
    assert code(T.BORDER_ARRIVALS, {**f.arrival("A1", f.T0), field: value}) == expected


def test_submitted_at_and_an_applicants_birth_date_are_bounded_too():
    assert code(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", f.T0, dob="1066-10-14")) == "schema"
    assert code(T.ADMISSIONS_APPLICATIONS, {**f.eoi("P1", f.T0), "submitted_at": "2200-01-01T00:00:00Z"}) == "schema"


@pytest.mark.parametrize("week,expected", [
    ("2025-W53", "schema"), ("2026-W53", "accepted"), ("2025-W52", "accepted"), ("2025-W00", "schema"),
    ("2025-W54", "schema"), ("1899-W10", "schema"), ("2101-W10", "schema"), ("2025W36", "schema"),
])
def test_a_week_that_does_not_exist_is_schema(week, expected):
    assert code(T.OPS_CONTROL, f.cap_set(week, 10, f.T0)) == expected


@pytest.mark.parametrize("cap,expected", [(0, "accepted"), (JSON_SAFE_INT, "accepted"), (-1, "schema"),
                                          (JSON_SAFE_INT + 1, "schema"), (10**4000, "schema")])
def test_a_cap_is_an_integer_every_consumer_can_hold(cap, expected):
    assert code(T.OPS_CONTROL, {**f.cap_set("2025-W36", 10, f.T0), "cap": cap}) == expected


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
def test_nan_and_infinity_are_schema(number):
    value = encode(f.cap_set("2025-W36", 10, f.T0)).replace(b'"cap":10', b'"cap":' + number)
    assert code(T.OPS_CONTROL, value) == "schema"
    extra = encode(f.arrival("A1", f.T0))[:-1] + b',"x":' + number + b"}"
    assert code(T.BORDER_ARRIVALS, extra) == "schema"


def test_nan_in_an_event_of_an_unlisted_type_is_unknown_type():
    value = encode({**f.tick(f.T0), "x": 1}).replace(b'"x":1', b'"x":NaN')
    assert code(T.BORDER_ARRIVALS, value) == "unknown_type"


def test_an_event_more_than_a_day_ahead_of_intakes_clock_is_implausible_time():
    ahead = NOW + timedelta(hours=24)
    assert code(T.OPS_CONTROL, f.tick(ahead)) == "accepted"
    assert code(T.OPS_CONTROL, f.tick(ahead + timedelta(seconds=1))) == "implausible_time"
    assert code(T.BORDER_ARRIVALS, f.arrival("A1", datetime(2031, 1, 1, tzinfo=timezone.utc))) == "implausible_time"
    # the same event is fine once intake's clock has caught up with it
    assert code(T.OPS_CONTROL, f.tick(ahead + timedelta(hours=1)), received_at=NOW + timedelta(hours=2)) == "accepted"


def test_the_event_time_and_not_another_time_field_is_what_must_be_plausible():
    # landed_at and submitted_at are facts the event reports; only occurred_at moves clocks
    later = f.arrival("A1", f.T0, landed_at=datetime(2090, 1, 1, tzinfo=timezone.utc))
    assert code(T.BORDER_ARRIVALS, later) == "accepted"


def test_validation_details_name_fields_and_never_quote_values():
    secret = "Zebedee-Quux"
    cases = [{**f.arrival("A1", f.T0), "family_name": secret * 100},
             {**f.arrival("A1", f.T0), "claimed_minor": secret},
             {**f.arrival("A1", f.T0), "date_of_birth": secret},
             {**f.arrival("A1", f.T0), "date_of_birth": "1850-02-03"},
             {**f.arrival("A1", f.T0), "biometric_id": secret},
             {**f.tick(f.T0), "event_type": secret}]
    for doc in cases:
        result = run(T.BORDER_ARRIVALS, encode(doc))
        assert isinstance(result, Rejected)
        assert secret not in result.error_detail and "1850" not in result.error_detail
    result = run(T.BORDER_ARRIVALS, encode({**f.arrival("A1", f.T0), "family_name": "x" * 2000}))
    assert result.error_detail.startswith("family_name")


def test_a_non_object_value_and_a_missing_event_type():
    assert code(T.BORDER_ARRIVALS, {"arrival_id": "A1"}) == "schema"
    assert code(T.BORDER_ARRIVALS, {**f.arrival("A1", f.T0), "event_type": 7}) == "schema"


# ---- properties -------------------------------------------------------------------------------

header_values = st.one_of(st.binary(max_size=80), st.text(max_size=80))
header_maps = st.dictionaries(
    st.sampled_from(["x-key-id", "x-signature", "content-type", "other"]), header_values, max_size=4)
topics = st.one_of(st.sampled_from(INBOUND), st.text(max_size=30))


@settings(max_examples=300, deadline=None)
@given(topic=topics, headers=header_maps, value=st.one_of(st.none(), st.binary(max_size=2000)))
def test_any_bytes_and_headers_give_a_contract_code_and_never_raise(topic, headers, value):
    result = screen(KEYRING, topic, headers, value, received_at=NOW)
    assert isinstance(result, (Accepted, Rejected))
    if isinstance(result, Rejected):
        assert result.error_code in CODES


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
    st.sampled_from(["2025-W53", "9999-12-31", "1899-01-01T00:00:00Z", "2031-01-01T00:00:00+00:00",
                     "\u202e\u0000\ud800", "Infinity", "[" * 40]))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=30)


@st.composite
def mutated_events(draw):
    """A good event of some topic with some fields replaced, removed or added."""
    topic = draw(st.sampled_from(INBOUND))
    doc = dict(GOOD[topic])
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        name = draw(st.sampled_from(sorted(doc))) if doc else "x"
        if action == "replace":
            doc[name] = draw(json_values)
        elif action == "remove":
            doc.pop(name, None)
        else:
            doc[draw(st.text(max_size=12))] = draw(json_values)
    value = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        value = value[:draw(st.integers(0, len(value)))]
    return topic, value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_events(), received_at=st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)))
def test_signed_mutations_of_good_events_never_raise(case, received_at):
    topic, value = case
    result = run(topic, value, received_at=received_at)
    assert isinstance(result, Accepted) or result.error_code in CODES[3:]  # signed, and on its own topic
    if isinstance(result, Accepted):
        assert result.event.occurred_at <= received_at + timedelta(hours=24)
        assert result.document["event_type"] == result.event.event_type
        # what intake does next with it must not fail either
        AcceptedEvent(source_topic=topic, source_partition=0, source_offset=0,
                      event=result.document).model_dump_json()
        assert subject_of(result.event)
        assert ANY_INBOUND.validate_python(result.document) == result.event


@settings(max_examples=60, deadline=None)
@given(topic=st.sampled_from(INBOUND), extra=st.integers(1, 5000), sign=st.booleans())
def test_an_oversized_value_is_too_large_whatever_else_is_wrong_with_it(topic, extra, sign):
    value = b"\xff[" * ((MAX_VALUE_BYTES + extra) // 2 + 1)
    assert code(topic, value, sign=sign) == "too_large"


@settings(max_examples=100, deadline=None)
@given(topic=st.sampled_from(INBOUND), value=st.binary(max_size=500), key_id=st.sampled_from(["", "nobody", "terminals"]))
def test_unsigned_or_badly_signed_values_are_signature_whatever_they_hold(topic, value, key_id):
    headers = {"x-key-id": key_id, "x-signature": "00" * 32} if key_id else {}
    assert screen(KEYRING, topic, headers, value, received_at=NOW).error_code == "signature"


@settings(max_examples=100, deadline=None)
@given(topic=st.sampled_from(INBOUND), other=st.sampled_from(INBOUND), value=st.binary(max_size=500))
def test_a_key_used_off_its_topics_is_unauthorised_whatever_the_value_holds(topic, other, value):
    assume(other != topic)
    key = KEYRING.key_for_topic(other)
    result = screen(KEYRING, topic, signed_headers(key, value), value, received_at=NOW)
    assert result.error_code == "unauthorised_producer"


@settings(max_examples=60, deadline=None)
@given(topic=st.sampled_from(INBOUND), depth=st.integers(MAX_DEPTH + 1, 5000),
       opener=st.sampled_from([b"[", b'{"k":']))
def test_signed_deep_nesting_is_not_json_and_never_recurses(topic, depth, opener):
    closer = b"]" if opener == b"[" else b"}"
    value = opener * depth + b"0" + closer * depth
    if len(value) <= MAX_VALUE_BYTES:
        assert code(topic, value) == "not_json"


@settings(max_examples=100, deadline=None)
@given(topic=st.sampled_from(INBOUND), ahead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)))
def test_only_events_more_than_a_day_ahead_are_implausible(topic, ahead):
    doc = {**GOOD[topic], "occurred_at": (NOW + ahead).isoformat()}
    expected = "implausible_time" if ahead > timedelta(hours=24) else "accepted"
    if (NOW + ahead).year > 2100:
        expected = "schema"
    assert code(topic, doc) == expected


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(INBOUND), value=st.one_of(
    st.binary(max_size=2000),
    st.text(st.sampled_from(list('{}[]":,\\ 0123456789.eE-+nulltruefalseNaNInfinity\ud800\x00')), max_size=300)
    .map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_signed_junk_passes_the_signature_and_still_never_raises(topic, value):
    result = run(topic, value)
    assert isinstance(result, Rejected) and result.error_code in ("not_json", "unknown_type", "schema")


@settings(max_examples=100, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=8), st.integers(), max_size=4), order=st.randoms())
def test_the_house_keeps_an_arrival_in_the_order_it_was_sent_less_the_personal_fields(extra, order):
    fields = list({**f.arrival("A1", f.T0), **extra}.items())
    order.shuffle(fields)
    doc = dict(fields)
    particulars, house = split_particulars(ANY_INBOUND.validate_python(f.arrival("A1", f.T0)), doc)
    assert particulars is not None and ArrivalParticulars.model_validate_json(particulars).family_name == doc["family_name"]
    assert list(house.items()) == [(k, v) for k, v in fields if k not in PERSONAL_FIELDS]
    assert doc == dict(fields)  # the document itself is left whole


def test_the_subject_is_the_first_identifying_field_the_event_has():
    at = "2026-01-05T06:00:00+00:00"
    base = {"event_id": "3f1b2c4d-0000-4000-8000-000000000001", "occurred_at": at, "producer": "ops-console"}
    cases = [
        ({**base, "event_type": "WeeklyCapSet", "week": "2026-W02", "cap": 50}, "2026-W02"),
        ({**base, "event_type": "ClockTick"}, "ClockTick"),
        ({**base, "event_type": "AdmissionsPaused", "reason": "review"}, "AdmissionsPaused"),
    ]
    for document, subject in cases:
        assert subject_of(ANY_INBOUND.validate_python(document)) == subject


# JSON values of every kind json.dumps writes, including what orjson reads otherwise or refuses:
# integers past 64 bits, NaN and infinities, lone surrogates, control characters.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
    | st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 25, 10 ** 18])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(alphabet="ab1é\x1f\u2028\"\\", max_size=6)
    | escapable,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | escapable, inner, max_size=4),
    max_leaves=12)


def comparable(result):
    """A reading, comparable (NaN equals itself as text)."""
    if isinstance(result, Rejected):
        return result
    document, non_finite = result
    return json.dumps(document), non_finite


@settings(max_examples=1500, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), cut=st.integers(0, 400), noise=st.binary(max_size=3),
       mutate=st.booleans())
def test_reading_with_orjson_first_gives_what_json_loads_gives(value, ascii_only, cut, noise, mutate):
    raw = json.dumps({"v": value, "event_type": "x"}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if mutate:  # a broken value too: cut short or with bytes put in
        raw = raw[:cut] + noise + raw[cut:]
    assert comparable(rules._parse(raw)) == comparable(rules._read(raw))  # _read: json.loads alone


def test_integers_past_64_bits_and_non_finite_numbers_read_as_json_loads_reads_them():
    assert rules._parse(b'{"a":123456789012345678901234567890}') == ({"a": 123456789012345678901234567890}, False)
    assert rules._parse(b'{"a":1e999}')[1] is True
    assert rules._parse(b'{"a":NaN}')[1] is True
    assert rules._parse(b'{"a":1.5,"b":[1,"\\u00e9"]}') == ({"a": 1.5, "b": [1, "é"]}, False)


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(family=names, given=names, born=st.none() | st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 1, 1)),
       vessel=names, point=names, landed=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                                                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2))])))
def test_an_arrivals_particulars_are_the_bytes_the_model_writes(family, given, born, vessel, point, landed):
    doc = {**f.arrival("A1", f.T0), "family_name": family, "given_names": given, "vessel_ref": vessel,
           "landing_point": point, "landed_at": landed.isoformat(), "occurred_at": landed.isoformat(),
           "date_of_birth": born.isoformat() if born else None}
    event = ANY_INBOUND.validate_python(doc)
    particulars, _ = split_particulars(event, doc)
    assert particulars == ArrivalParticulars(
        arrival_id=event.arrival_id, occurred_at=event.occurred_at.isoformat(), family_name=event.family_name,
        given_names=event.given_names, date_of_birth=event.date_of_birth.isoformat() if event.date_of_birth else None,
        nationality=event.nationality, landed_at=event.landed_at.isoformat(), landing_point=event.landing_point,
        vessel_ref=event.vessel_ref).model_dump_json().encode()
