"""Enforcement's compact forms agree with the plain ones: the biometric index as held in memory
(restored or replayed), and the screened event written without building its model."""
from __future__ import annotations

import random
import uuid

from hypothesis import given, settings, strategies as st

from services.enforcement.app import Enforcement, screened_json
from services.enforcement.index import BiometricIndex
from services.enforcement.rules import NOBODY, Person, Screening, person_key
from shared.events.in_house import Accepted
from shared.events.internal import ScreenedEvent, Screening as ScreeningModel
from shared.state import Snapshot
from tests.support.chunks import restore_in_chunks
from tests.unit.test_enforcement import ALICE, BOB, Harness, arrival, encounter, record_ban, vetted

ids = st.lists(st.text(min_size=1, max_size=12), max_size=3, unique=True).map(tuple)


# ---- the screened event: fast path == the model's bytes ------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**80, 2**80) | st.text()
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(0, 99), st.integers(0, 2**40),
       st.dictionaries(st.text(max_size=15) | st.just("biometric_id"), json_values, max_size=8),
       st.booleans(), ids, ids, ids, st.none() | st.integers(0, 4095))
def test_the_screened_json_is_the_models_bytes(source_topic, partition, offset, event, with_biometric,
                                               arrivals, applications, reports, bucket):
    if with_biometric:
        event = {**event, "biometric_id": ALICE}
    model = ScreenedEvent(source_topic=source_topic, source_partition=partition, source_offset=offset,
                          event={k: v for k, v in event.items() if k != "biometric_id"},
                          screening=ScreeningModel(arrival_ids=list(arrivals), application_ids=list(applications),
                                                   report_ids=list(reports), person_bucket=bucket))
    fast = screened_json(Accepted(source_topic, partition, offset, event, None),
                         Screening(arrivals, applications, reports), bucket)
    assert fast == model.model_dump_json().encode()


# ---- the index: packed == unpacked, restored == replayed ------------------------------------
people = st.builds(Person, ids, ids, ids, st.none() | st.text(min_size=1), st.none() | st.text(min_size=1))


@given(people)
def test_the_index_gives_back_the_person_it_was_given(person):
    index = BiometricIndex()
    assert index.person(b"\x01" * 32) == NOBODY
    index.put(b"\x01" * 32, person)
    assert index.person(b"\x01" * 32) == person


def test_a_person_known_by_one_arrival_is_held_as_that_arrival_id_alone():
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", BOB, 1))
    persons = h.service.index._persons
    assert persons[bytes.fromhex(ALICE)] == "ARR-1"
    assert persons[bytes.fromhex(BOB)] == Person((), ("APP-1",))


def _history() -> Harness:
    h = Harness()
    h.screen(arrival("ARR-1", ALICE))
    h.screen(vetted("APP-1", BOB, 1))
    h.screen(arrival("ARR-2", ALICE, 60))
    h.ban(record_ban("ARR-2", "REQ-1", 61))
    h.screen(arrival("ARR-3", BOB, 62))
    h.screen(arrival("ARR-3", "c3" * 32, 63))  # recorded again under another biometric
    h.screen(encounter("REP-1", BOB, 64))
    h.screen(arrival("ARR-4", "d4" * 32, 65))
    return h


def test_the_restored_index_is_the_replayed_one_and_holds_none_of_the_snapshots_strings():
    h = _history()
    snapshot = h.snapshot()
    restored = Enforcement()
    restored.restore(snapshot)
    assert restored.index == h.service.index

    # the snapshot is dropped after a restore: nothing of it may stay alive through the index
    held = {id(s) for s in _strings(restored.index)}
    assert not held & {id(s) for s in _strings(snapshot.records)}
    # and an arrival id is one string, shared by the person and the arrival
    persons, arrivals = restored.index._persons, restored.index._arrivals
    [arr4] = [k for k in arrivals if k == "ARR-4"]
    assert persons[bytes.fromhex("d4" * 32)] is arr4


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, BiometricIndex):
        return _strings(value._persons) + _strings(value._arrivals)
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["arrival", "vetted", "encounter", "ban"]), st.integers(0, 3),
                          st.sampled_from([ALICE, BOB, "c3" * 32])), max_size=25))
def test_a_restore_at_any_step_gives_the_replayed_index(steps):
    h = Harness()
    make = {"arrival": (arrival, "ARR"), "vetted": (vetted, "APP"), "encounter": (encounter, "REP")}
    for minute, (kind, n, biometric) in enumerate(steps):
        if kind == "ban":
            h.ban(record_ban(f"ARR-{n}", f"REQ-{n}", minute, instruction_id=str(uuid.UUID(int=minute))))
        else:
            fn, prefix = make[kind]
            h.screen(fn(f"{prefix}-{n}", biometric, minute))
        restored = Enforcement()
        restored.restore(h.snapshot())
        assert restored.index == h.service.index
        assert restored.pending.keys() == h.service.pending.keys()
        # and in chunks in any order, some records twice, as a restart's load hands them over
        chunked = Enforcement()
        restore_in_chunks(chunked.restoring(), h.snapshot(), random.Random(minute))
        assert chunked.index == h.service.index
        assert chunked.pending == h.service.pending and chunked.now == h.service.now


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_a_restore_in_chunks_holds_none_of_the_records_strings_and_one_string_per_arrival(rnd):
    h = _history()
    snapshot = h.snapshot()
    restored = Enforcement()
    restore_in_chunks(restored.restoring(), snapshot, rnd)
    assert restored.index == h.service.index
    assert not {id(s) for s in _strings(restored.index)} & {id(s) for s in _strings(snapshot.records)}
    persons, arrivals = restored.index._persons, restored.index._arrivals
    [arr4] = [k for k in arrivals if k == "ARR-4"]
    assert persons[bytes.fromhex("d4" * 32)] is arr4


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_stored_records_that_disagree_rebuild_as_the_arrival_records_say(rnd):
    """An arrival record decides its owner over every person that lists it; one naming no
    stored person leaves its arrival out; a person stored under a key that is not its
    biometric's digest is still found by its arrivals."""
    alice, bob, odd = bytes.fromhex(ALICE), bytes.fromhex(BOB), bytes.fromhex("e5" * 32)
    records = {
        person_key(ALICE): Person(("ARR-1", "ARR-2")).to_record(ALICE),
        person_key(BOB): Person(("ARR-2", "ARR-3")).to_record(BOB),  # ARR-2 recorded again under Bob
        "person:not-a-digest": Person(("ARR-5",)).to_record("e5" * 32),
        "arrival:ARR-1": {"person": person_key(ALICE)},
        "arrival:ARR-2": {"person": person_key(ALICE)},  # Alice's, whoever is read first
        "arrival:ARR-3": {"person": person_key("f6" * 32)},  # nobody stored: left out
        "arrival:ARR-4": {"person": person_key(BOB)},  # listed by nobody: Bob's, as its record says
        "arrival:ARR-5": {"person": "person:not-a-digest"},
        "arrival:ARR-6": {"person": 42},  # not a key at all: left out, as an unknown person
    }
    restored = Enforcement()
    restore_in_chunks(restored.restoring(), Snapshot(1, records, set(), {}, {}), rnd)
    index = restored.index
    assert (index.owner("ARR-1"), index.owner("ARR-2"), index.owner("ARR-3"), index.owner("ARR-4"),
            index.owner("ARR-5"), index.owner("ARR-6")) == (alice, alice, None, bob, odd, None)
    assert index.person(bob).arrival_ids == ("ARR-2", "ARR-3")
