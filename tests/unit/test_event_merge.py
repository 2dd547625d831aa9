"""The event-time merge of input partitions (shared/merge.py) and intake's key for it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from services.intake.order import FIRST, event_time_of
from shared.merge import EventTimeMerge


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    time: float


def _key(rec: Rec) -> float:
    return rec.time


# Partitions, each already in event-time order (a producer publishes its own events in order).
partitions = st.lists(st.lists(st.integers(0, 50), max_size=12), min_size=1, max_size=5).map(
    lambda parts: {("t", p): [Rec("t", p, o, float(t)) for o, t in enumerate(sorted(times))]
                   for p, times in enumerate(parts)})


def _merged(parts):
    return sorted((r for recs in parts.values() for r in recs), key=lambda r: (r.time, r.topic, r.partition, r.offset))


@settings(max_examples=300, deadline=None)
@given(parts=partitions, data=st.data())
def test_whatever_the_fetches_interleave_the_order_is_the_event_time_order(parts, data):
    merge = EventTimeMerge(_key)
    assigned = set(parts)
    fetched = {p: 0 for p in parts}
    out = []
    for _ in range(200):
        waiting = [p for p in parts if fetched[p] < len(parts[p])]
        if waiting:  # one fetch: some records of some partitions, in any order of partitions
            batch = []
            order = data.draw(st.permutations(waiting))
            for p in order[:data.draw(st.integers(1, len(order)))]:
                n = data.draw(st.integers(1, len(parts[p]) - fetched[p]))
                batch += parts[p][fetched[p]:fetched[p] + n]
                fetched[p] += n
            merge.add(batch, assigned)
        caught_up = {p for p in parts if fetched[p] == len(parts[p])}
        out += merge.release(caught_up, assigned, data.draw(st.sampled_from([None, 1, 3])))
        merge.done()
        if not waiting and not merge.holding():
            break
    assert out == _merged(parts)


@settings(max_examples=200, deadline=None)
@given(parts=partitions, data=st.data())
def test_the_committed_offset_never_passes_a_record_not_decided_and_a_failure_reads_it_again(parts, data):
    merge = EventTimeMerge(_key)
    assigned = set(parts)
    position = {p: 0 for p in parts}  # the consumer's next fetch, per partition
    committed = {p: 0 for p in parts}
    decided: list[Rec] = []
    failures = 0
    for _ in range(300):
        batch = []
        for p in parts:
            n = data.draw(st.integers(1, 3))
            batch += parts[p][position[p]:position[p] + n]
            position[p] = min(len(parts[p]), position[p] + n)
        merge.add(batch, assigned)
        released = merge.release({p for p in parts if position[p] == len(parts[p])}, assigned)
        if released and failures < 5 and data.draw(st.booleans()):  # the batch failed: read again
            failures += 1
            position.update(merge.rewind())
            continue
        decided += released
        merge.done()
        committed.update(merge.to_commit())
        for p in parts:
            owed = [r.offset for r in parts[p] if r not in decided]
            assert committed[p] <= (owed[0] if owed else len(parts[p]))
        if all(position[p] == len(parts[p]) for p in parts) and not merge.holding():
            break
    assert decided == _merged(parts)
    assert committed == {p: len(recs) for p, recs in parts.items()}


def test_a_partition_behind_with_nothing_in_hand_stops_the_merge_until_its_records_come():
    merge = EventTimeMerge(_key)
    a, b = ("t", 0), ("t", 1)
    merge.add([Rec("t", 0, 0, 5.0), Rec("t", 0, 1, 9.0)], {a, b})
    assert merge.release(set(), {a, b}) == []  # b has records we have not seen
    assert [r.time for r in merge.release({b}, {a, b})] == [5.0, 9.0]  # b is caught up: go on


def test_a_partition_read_again_from_an_earlier_offset_replaces_what_it_held():
    merge = EventTimeMerge(_key)
    a = ("t", 0)
    merge.add([Rec("t", 0, 0, 1.0), Rec("t", 0, 1, 2.0), Rec("t", 0, 2, 3.0)], {a})
    merge.add([Rec("t", 0, 1, 2.0), Rec("t", 0, 2, 3.0)], {a})  # a rebalance rewound it to 1
    assert [r.offset for r in merge.release({a}, {a})] == [0, 1, 2]


def test_a_partition_taken_away_is_forgotten():
    merge = EventTimeMerge(_key)
    a, b = ("t", 0), ("t", 1)
    merge.add([Rec("t", 0, 0, 1.0), Rec("t", 1, 0, 2.0)], {a, b})
    merge.add([], {b})
    assert [r.partition for r in merge.release({b}, {b})] == [1]
    assert merge.to_commit() == {b: 0}  # handed on, not yet decided
    merge.done()
    assert merge.to_commit() == {b: 1}


# ---- intake's key --------------------------------------------------------------------------
NOW = datetime(2025, 9, 1, tzinfo=timezone.utc).timestamp()


def test_the_key_is_the_events_own_time():
    value = b'{"event_id":"x","event_type":"ArrivalRecorded","occurred_at": "2025-08-31T10:00:00+01:00"}'
    assert event_time_of(value, NOW) == datetime(2025, 8, 31, 9, tzinfo=timezone.utc).timestamp()
    assert event_time_of(b'{"occurred_at":"2025-08-31T09:00:00Z"}', NOW) == event_time_of(value, NOW)


def test_a_value_without_a_time_to_trust_goes_first():
    far = (datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=2)).isoformat()
    for value in (None, b"", b"not json", b'{"occurred_at":"yesterday"}', b'{"occurred_at":"2025-08-31T09:00:00"}',
                  f'{{"occurred_at":"{far}"}}'.encode(), b'{"occurred_at":"9999-12-31T23:59:59Z"}',
                  b'{"occurred_at":"2025-02-30T00:00:00Z"}'):
        assert event_time_of(value, NOW) == FIRST, value
    assert FIRST == -math.inf


@given(st.binary(max_size=300))
def test_the_key_never_raises(value):
    assert isinstance(event_time_of(value, NOW), float)
