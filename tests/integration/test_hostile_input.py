"""Hostile input at the edge, through the real services on the real broker and Redis.

Every inbound topic gets a batch of hostile values drawn from hypothesis strategies (derandomized,
so a run is reproducible): each must end as exactly one dead letter with the contract's code, or
be processed as the good event it is; the next good event is decided; no service restarts.
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared import topics as T
from shared.limits import MAX_DEPTH, MAX_STRING, MAX_VALUE_BYTES
from shared.signing import signed_headers
from tests.support import factory as f
from tests.support.client import encode
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration

INBOUND = tuple(T.INBOUND_EVENT_TYPES)
ACCEPTED = "accepted"
# Topics whose every accepted event gets a Decision about its subject straight away.
DECIDED = {T.BORDER_ARRIVALS, T.CASEWORK_UPDATES, T.ADMISSIONS_APPLICATIONS, T.LIAISON_FR_DECISIONS,
           T.TRANSFERS_MOVEMENTS}
SUBJECT_FIELDS = ("arrival_id", "application_id", "request_id", "report_id")
# Fields an outside party fills with free text or its own ids: where odd Unicode is legal.
FREE_TEXT = {"family_name", "given_names", "landing_point", "vessel_ref", "producer", "flight_ref",
             "employer_ref", "reason_code", "family_group_ref", "claim_id", "challenge_id", *SUBJECT_FIELDS}
TIME_FIELDS = {"occurred_at", "landed_at", "submitted_at"}
DATE_FIELDS = {"date_of_birth"}
ODD = ["\x00", "\u202e", "\u200f", "\u200b", "\ufeff", "\u0301", "\U0001f600", "\n", "\x1b", "\u2028",
       "\x7f", "\U0010ffff", "ß", "\u0644", "\u05d0"]
odd_text = st.text(st.one_of(st.sampled_from(ODD), st.characters(codec="utf-8")), min_size=1, max_size=60)
json_junk = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                      st.text(max_size=20), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@dataclass(frozen=True)
class Case:
    kind: str
    value: bytes
    expected: str  # a DeadLetter error_code, or ACCEPTED
    sign: str = "own"  # own | none | bad | foreign
    key: str | None = None
    subject: str | None = None  # for an accepted event: what its Decision is about


def template(topic: str, tag: str, choice: int, at: datetime) -> dict:
    """A good event for the topic, about a subject of its own (`tag`), with a stable event_id."""
    return {**_template(topic, tag, choice, at), "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hostile/{tag}"))}


def _template(topic: str, tag: str, choice: int, at: datetime) -> dict:
    if topic == T.BORDER_ARRIVALS:
        return f.arrival(f"HA{tag}", at)
    if topic == T.CASEWORK_UPDATES:
        return [f.casework("AgeAssessed", f"HC{tag}", at, assessed_minor=False),
                f.casework("LegalChallengeFiled", f"HC{tag}", at, challenge_id=f"J{tag}", kind="appeal"),
                f.casework("PersonAbsconded", f"HC{tag}", at)][choice % 3]
    if topic == T.ADMISSIONS_APPLICATIONS:
        return [f.eoi(f"HP{tag}", at, family=f"F{tag}"), f.vetted(f"HP{tag}", at),
                f.withdrawn(f"HP{tag}", at)][choice % 3]
    if topic == T.LIAISON_FR_DECISIONS:
        return f.answer(f"HR{tag}", at, decision="refused", reason_code="R1")
    if topic == T.TRANSFERS_MOVEMENTS:
        return [f.executed(f"HR{tag}", at), f.failed(f"HR{tag}", at), f.admission_arrived(f"HP{tag}", at)][choice % 3]
    if topic == T.ENFORCEMENT_ILLEGAL_WORKING:
        return f.illegal_working(f"HW{tag}", at, f"nobody-{tag}")
    # a cap for a week far from the others, so an accepted one moves nothing the test looks at
    return [f.cap_set("2025-W45", 7, at), f.paused(at), f.resumed(at), f.tick(at)][choice % 4]


def subject(doc: dict) -> str | None:
    return next((doc[k] for k in SUBJECT_FIELDS if isinstance(doc.get(k), str)), None)


def with_raw_control(doc: dict, name: str) -> bytes:
    marked = {**doc, name: "a\u0001b"}
    return encode(marked).replace(b"\\u0001", b"\x01")


@st.composite
def hostile(draw, topic: str, kind: str, tag: str) -> Case:
    doc = template(topic, tag, draw(st.integers(0, 11)), T0 + draw(st.integers(0, 600)) * MINUTE)
    text_fields = sorted((FREE_TEXT | ({"reason"} if doc["event_type"].startswith("Admissions") else set())) & set(doc))
    if kind == "random_bytes":
        raw = draw(st.binary(max_size=300).filter(lambda b: not _is_object(b)))
        return Case(kind, raw, "not_json")
    if kind == "truncated":
        raw = encode(doc)
        return Case(kind, raw[:draw(st.integers(0, len(raw) - 1))], "not_json")
    if kind == "deep":
        depth = draw(st.integers(MAX_DEPTH + 1, 20_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"k":', b"}")]))
        nest = opener * (depth - 1) + b"0" + closer * (depth - 1)
        return Case(kind, encode(doc)[:-1] + b',"x":' + nest + b"}", "not_json")
    if kind == "too_large":
        size = draw(st.integers(MAX_VALUE_BYTES + 1, 900_000))
        return Case(kind, encode({**doc, "producer": "p" * size}), "too_large", sign="none")
    if kind == "long_string":
        name = draw(st.sampled_from(text_fields))
        long = draw(st.text(st.sampled_from(ODD + ["a", "é"]), min_size=MAX_STRING + 1, max_size=MAX_STRING + 50))
        return Case(kind, encode({**doc, name: long * draw(st.integers(1, 20))}), "schema")
    if kind == "odd_unicode":
        name = draw(st.sampled_from(text_fields))
        doc = {**doc, name: draw(odd_text)}
        return Case(kind, encode(doc), ACCEPTED, subject=subject(doc))
    if kind == "lone_surrogate":
        name = draw(st.sampled_from(text_fields))
        doc = {**doc, name: "x" + draw(st.sampled_from(["\ud800", "\udfff", "\udbff"])) + "y"}
        return Case(kind, json.dumps(doc).encode("ascii"), "not_json")
    if kind == "raw_control":
        return Case(kind, with_raw_control(doc, draw(st.sampled_from(text_fields))), "not_json")
    if kind == "wrong_type":
        name = draw(st.sampled_from(sorted(doc)))
        original = type(doc[name])
        junk = draw(json_junk.filter(lambda v: type(v) is not original and not (original is int and type(v) is float)))
        return Case(kind, encode({**doc, name: junk}), "schema")
    if kind == "missing":
        name = draw(st.sampled_from(sorted(doc)))
        return Case(kind, encode({k: v for k, v in doc.items() if k != name}), "schema")
    if kind == "extra":
        name = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in doc))
        return Case(kind, encode({**doc, name: draw(json_junk)}), "schema")
    if kind == "out_of_range":
        year = draw(st.one_of(st.integers(1, 1899), st.integers(2101, 9999)))
        names = sorted((TIME_FIELDS | DATE_FIELDS | {"week"}) & set(doc))
        name = draw(st.sampled_from(names))
        if name in TIME_FIELDS:
            value = f"{year:04d}-06-15T12:00:00+00:00"
        elif name in DATE_FIELDS:
            value = f"{year:04d}-06-15"
        else:  # a week of a year out of range, or one the calendar does not have
            value = draw(st.sampled_from([f"{year:04d}-W10", "2025-W53", "2024-W53", "2027-W53"]))
        return Case(kind, encode({**doc, name: value}), "schema")
    if kind == "nan":
        name = draw(st.sampled_from(sorted(doc) + ["extra"]))
        number = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        return Case(kind, json.dumps({**doc, name: number}).encode(), "schema")
    if kind == "implausible":
        when = datetime(draw(st.integers(2031, 2099)), 3, 1, tzinfo=timezone.utc)
        return Case(kind, encode({**doc, "occurred_at": when.isoformat()}), "implausible_time")
    if kind == "key_disagrees":
        return Case(kind, encode(doc), ACCEPTED, key=draw(odd_text), subject=subject(doc))
    if kind == "bad_signature":
        sign = draw(st.sampled_from(["none", "bad", "foreign"]))
        return Case(kind, encode(doc), "unauthorised_producer" if sign == "foreign" else "signature", sign=sign)
    raise AssertionError(kind)


KINDS = ("random_bytes", "truncated", "deep", "too_large", "long_string", "odd_unicode", "lone_surrogate",
         "raw_control", "wrong_type", "missing", "extra", "out_of_range", "nan", "implausible",
         "key_disagrees", "bad_signature")


def _is_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def drawn(strategy):
    """One value of `strategy`, the same on every run (derandomized, no example database)."""
    found = []

    @settings(derandomize=True, database=None, max_examples=8, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def take(value):
        found.append(value)

    take()
    return found[-1]


def batch_for(topic: str) -> list[Case]:
    short = "".join(p[0] for p in topic.replace("-", ".").split(".")[:2]).upper()
    return list(drawn(st.tuples(*(hostile(topic, kind, f"{short}{i}") for i, kind in enumerate(KINDS)))))


async def publish(client, house, topic: str, case: Case):
    headers = None
    if case.sign == "bad":
        headers = {"x-signature": "ab" * 32}
    elif case.sign == "foreign":
        other = next(t for t in INBOUND if t != topic)
        headers = signed_headers(house.keyring.key_for_topic(other), case.value)
    return await client.publish(topic, raw=case.value, key=case.key or subject_hint(case), sign=case.sign != "none",
                                headers=headers)


def subject_hint(case: Case) -> str:
    return case.subject or "hostile"


def service_pids(house) -> dict[str, int]:
    return {name: svc.process.pid for name, svc in house.stack.services.items()}


def assert_nothing_restarted(house, before: dict[str, int]) -> None:
    assert service_pids(house) == before, "a service process was replaced"
    dead = [name for name, svc in house.stack.services.items() if not svc.alive]
    assert not dead, f"services died: {dead}"


def letters_by_place(observer) -> dict[tuple[str, int, int], list[dict]]:
    places: dict[tuple[str, int, int], list[dict]] = {}
    for letter in observer.events(T.OPS_DEAD_LETTERS, "DeadLetter"):
        places.setdefault((letter["source_topic"], letter["partition"], letter["offset"]), []).append(letter)
    return places


async def test_hostile_values_on_every_inbound_topic_are_dead_lettered_or_processed(house, client, observer):
    pids = service_pids(house)
    placed: list[tuple[tuple[str, int, int], Case]] = []
    for n, topic in enumerate(INBOUND):
        for case in batch_for(topic):
            meta = await publish(client, house, topic, case)
            placed.append(((meta.topic, meta.partition, meta.offset), case))
        good = f.arrival(f"GOOD{n}", T0 + DAY + n * HOUR)
        await client.publish(T.BORDER_ARRIVALS, good)
        await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=f"GOOD{n}", decision="eligible", timeout=120)

    rejected = [(place, case) for place, case in placed if case.expected != ACCEPTED]
    await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", count=len(rejected), timeout=120)
    for place, case in placed:
        if case.expected == ACCEPTED and place[0] in DECIDED:
            await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=case.subject, timeout=60)
    await observer.quiet(2.0)

    letters = letters_by_place(observer)
    wrong = []
    for place, case in placed:
        codes = [d["error_code"] for d in letters.pop(place, [])]
        want = [] if case.expected == ACCEPTED else [case.expected]
        if codes != want:
            wrong.append(f"{place} {case.kind}: expected {want}, got {codes}; value {case.value[:120]!r}")
    assert not wrong, "\n".join(wrong)
    assert not letters, f"dead letters for records no test sent: {letters}"
    for letter in observer.events(T.OPS_DEAD_LETTERS, "DeadLetter"):
        assert len(letter.raw) <= 512 * 1024
        raw = base64.b64decode(letter["raw_value_b64"])
        assert len(raw) == min(letter["raw_size"], 256 * 1024)
    assert len(observer.events(T.OPS_ALERTS, "Alert", kind="dead_letter")) == len(rejected)
    assert_nothing_restarted(house, pids)


async def test_deep_json_800kb_of_junk_and_year_9999_then_a_good_arrival(house, client, observer):
    """Issue 7's three messages: each one dead letter with its code, and nothing stalls."""
    pids = service_pids(house)
    deep = b'{"event_type":"ArrivalRecorded","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    await client.publish(T.BORDER_ARRIVALS, raw=deep, key="deep")
    await client.publish(T.BORDER_ARRIVALS, raw=bytes(range(256)) * 3200, key="junk", sign=False)  # 800 KB
    far = f.arrival("A9999", T0, landed_at=datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc))
    await client.publish(T.BORDER_ARRIVALS, far)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0 + MINUTE))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="eligible", timeout=120)
    letters = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", count=3, timeout=60)
    await observer.quiet(2.0)
    letters = observer.events(T.OPS_DEAD_LETTERS, "DeadLetter")
    assert sorted(d["error_code"] for d in letters) == ["not_json", "schema", "too_large"]
    by_code = {d["error_code"]: d for d in letters}
    assert "landed_at" in by_code["schema"]["error_detail"] and "9999" not in by_code["schema"]["error_detail"]
    assert by_code["too_large"]["raw_size"] == 819_200
    assert not observer.events(T.OPS_AUDIT, "Decision", subject_ref="A9999")
    assert_nothing_restarted(house, pids)


async def test_a_signed_event_dated_years_ahead_is_implausible_and_moves_no_clock(house, client, observer):
    pids = service_pids(house)
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1", decision="eligible", timeout=120)
    # From a valid operators' key: a tick in 2031 would expire every open case if believed.
    await client.publish(T.OPS_CONTROL, f.tick(datetime(2031, 1, 1, tzinfo=timezone.utc)))
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A2", T0 + HOUR))
    [decision] = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A2", decision="eligible", timeout=120)
    [letter] = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", timeout=60)
    await observer.quiet(2.0)
    assert letter["error_code"] == "implausible_time" and letter["source_topic"] == T.OPS_CONTROL
    # The next good event is decided at its own time: nothing moved the clock to 2031.
    assert datetime.fromisoformat(decision["occurred_at"]) == T0 + HOUR
    assert not observer.events(T.OPS_AUDIT, "Decision", decision="ineligible")
    assert all(not str(e.get("occurred_at", "")).startswith("2031")
               for e in observer.events() if e.topic != T.OPS_DEAD_LETTERS)
    assert len(observer.events(T.OPS_DEAD_LETTERS)) == 1
    assert_nothing_restarted(house, pids)
