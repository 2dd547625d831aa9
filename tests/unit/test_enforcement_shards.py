"""Enforcement in shards (shared/shards.py): each shard decides its own people's events and bans,
and together they decide what one enforcement decides, each thing once."""
from __future__ import annotations

import json
import uuid

from hypothesis import given, settings, strategies as st

from services.enforcement.app import Enforcement, bucket_in
from shared import topics
from shared.events.internal import AcceptedEvent
from shared.shards import Shard, bucket_of
from tests.unit.test_enforcement import ALICE, BOB, Harness, arrival, detained, encounter, record_ban, vetted

PEOPLE = [ALICE, BOB, "d4" * 32, "f6" * 32]  # their buckets fall on every shard of two and of three
KINDS = {"ArrivalRecorded": arrival, "ApplicationVetted": vetted, "IllegalWorkingEncounter": encounter}
step = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(sorted(KINDS)), st.integers(0, 2), st.sampled_from(PEOPLE),
              st.integers(0, 30)),
    st.tuples(st.just("detained"), st.sampled_from(PEOPLE), st.integers(0, 2), st.integers(0, 30)),
    # a ban of arrival ARR-n: with the bucket matching carried from its screening, or without one
    # (an arrival screened before enforcement ran in shards)
    st.tuples(st.just("ban"), st.sampled_from(PEOPLE), st.integers(0, 2), st.booleans(), st.integers(0, 5)),
)


def _history(steps) -> list[tuple[str, object]]:
    events, by_id = [], {}
    for n, s in enumerate(steps):
        if s[0] == "event":
            _, kind, i, person, eid = s
            prefix = {"ArrivalRecorded": f"ARR-{person[:2]}", "ApplicationVetted": "APP",
                      "IllegalWorkingEncounter": "REP"}[kind]  # one arrival, one person (the index keeps the first)
            # an event id seen before is the same event again (a redelivery, a retry)
            events.append(("accepted", by_id.setdefault(
                eid, KINDS[kind](f"{prefix}-{i}", person, n, event_id=str(uuid.UUID(int=eid))))))
        elif s[0] == "detained":
            events.append(("accepted", detained(f"ARR-{s[1][:2]}-{s[2]}", s[3])))
        else:
            events.append(("ban", s))
    people: dict[str, set[str]] = {}  # arrival id -> the biometrics it was recorded under
    for kind, thing in events:
        if kind == "accepted" and thing["event_type"] == "ArrivalRecorded":
            people.setdefault(thing["arrival_id"], set()).add(thing["biometric_id"])
    out, recorded, bans = [], set(), {}
    for n, (kind, thing) in enumerate(events):
        if kind == "accepted":
            if thing["event_type"] == "ArrivalRecorded":
                recorded.add(thing["arrival_id"])
            out.append((kind, thing))
            continue
        _, person, i, with_bucket, iid = thing  # ("ban", person, i, with_bucket, instruction id)
        arrival_id, bucket = f"ARR-{person[:2]}-{i}", None
        if with_bucket:  # matching orders a ban only for an arrival screened (it may be read first)
            if len(people.get(arrival_id, ())) != 1:
                continue
            bucket = bucket_of(bytes.fromhex(next(iter(people[arrival_id]))))
        elif arrival_id not in recorded or len(people[arrival_id]) != 1:
            continue  # without a bucket, only for an arrival screened before, under one biometric
        # an instruction id seen before is the same instruction again (a redelivery)
        ban = bans.setdefault(iid, record_ban(arrival_id, f"REQ-{person[:2]}-{i}", n,
                                              instruction_id=str(uuid.UUID(int=1000 + iid))).model_copy(
            update={"person_bucket": bucket}))
        out.append(("ban", ban))
    return out


def _run(records, service: Enforcement) -> tuple[list[tuple[str, str | None, dict]], dict[str, dict]]:
    """What the service published, and the records it keeps (less its clock)."""
    h = Harness()
    h.service = service
    out = []
    for rec in records:
        out += [(o.topic, o.key, json.loads(o.value)) for o in h.feed(rec).out]
    return out, {k: v for k, v in h.records.items() if k != "meta"}


def _without_bucket(message):
    topic, key, value = message
    if topic == topics.ENFORCEMENT_SCREENED:
        value = {**value, "screening": {**value["screening"], "person_bucket": None}}
    return topic, key, value


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=30), st.integers(2, 3))
def test_the_shards_together_decide_what_one_enforcement_decides_each_thing_once(steps, count):
    maker = Harness()
    records = [maker.accepted(thing) if kind == "accepted" else maker.instruction(thing)
               for kind, thing in _history(steps)]
    one, kept = _run(records, Enforcement())
    runs = [_run(records, Enforcement(shard=Shard(k, count))) for k in range(count)]
    shards = [out for out, _ in runs]
    # each person, arrival and waiting ban is kept by one shard, as one enforcement keeps it
    assert sum(len(records) for _, records in runs) == len(kept)
    assert {k: v for _, records in runs for k, v in records.items()} == kept
    for k, out in enumerate(shards):
        # each shard's output is the one enforcement's, in its order, less what is not its own
        assert [_without_bucket(m) for m in out] == [m for m in one if m in [_without_bucket(x) for x in out]]
        for topic, _, value in out:
            if topic == topics.ENFORCEMENT_SCREENED and value["screening"]["person_bucket"] is not None:
                assert value["screening"]["person_bucket"] % count == k  # a person stays on their shard
    together = sorted(json.dumps(_without_bucket(m), sort_keys=True) for out in shards for m in out)
    assert together == sorted(json.dumps(m, sort_keys=True) for m in one)


def test_an_event_is_its_biometrics_shards_and_one_without_is_shard_zeros():
    record = AcceptedEvent(source_topic=topics.BORDER_ARRIVALS, source_partition=0, source_offset=0,
                           event=arrival("ARR-1", ALICE)).model_dump_json().encode()
    assert bucket_in(record) == bucket_of(bytes.fromhex(ALICE))
    assert bucket_in(b'{"event":{"arrival_id":"A"}}') is None
    assert bucket_in(b'{"event":{"biometric_id":"abc"}}') is None  # not hex bytes: shard 0's, which refuses it
    assert Shard(0, 2).owns(None) and not Shard(1, 2).owns(None)
    assert {bucket_of(bytes([i])) % 2 for i in range(20)} == {0, 1}  # people spread over the shards
