"""Intake in shards (shared/shards.py): who consumes what, and enforcement's merge of the shards'
partitions back into one intake's order, driven through the runner's merged input on a broker
simulated in memory."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from services.enforcement.app import Enforcement
from services.enforcement.order import BEFORE_ALL, accepted_order
from shared import topics as T
from shared.events.internal import accepted_json
from shared.merged_input import MergedInput
from shared.settings import Settings
from shared.shards import MARK, Shard
from shared.topics import catalogue

T0 = datetime(2025, 8, 6, tzinfo=timezone.utc)


def test_the_shards_share_every_inbound_partition_out_exactly_once():
    for count in (1, 2, 3, 4):
        owned = [p for k in range(count) for p in Shard(k, count).places(T.INBOUND_TOPICS)]
        every = [(t, p) for t in T.INBOUND_TOPICS for p in range(T.TOPICS_BY_NAME[t].partitions)]
        assert sorted(owned) == sorted(every)
    assert (T.OPS_CONTROL, 0) in Shard(0, 2).places(T.INBOUND_TOPICS)
    assert Shard(1, 2).places((T.BORDER_ARRIVALS,)) == [(T.BORDER_ARRIVALS, 1), (T.BORDER_ARRIVALS, 3),
                                                       (T.BORDER_ARRIVALS, 5)]


def test_each_shard_is_a_writer_of_its_own_and_one_shard_is_the_service_as_before():
    assert Shard().namespace("intake") == "intake" and not Shard().split
    assert [Shard(k, 3).namespace("intake") for k in range(3)] == ["intake", "intake-s1", "intake-s2"]
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError):
            Shard(index, count)


def test_the_shard_comes_from_its_setting_or_from_the_pod_index(monkeypatch):
    monkeypatch.setenv("INTAKE_SHARDS", "2")
    monkeypatch.setenv("POD_INDEX", "3")
    settings = Settings.from_env()
    assert settings.intake_shards == 2 and settings.enforcement_shards == 1
    assert Shard.of(settings, 2) == Shard(1, 2)  # pods 1 and 3: shard 1's active and standby
    assert Shard.of(settings, 1) == Shard(0, 1)
    monkeypatch.setenv("SERVICE_SHARD", "0")
    assert Shard.of(Settings.from_env(), 2) == Shard(0, 2)
    monkeypatch.delenv("SERVICE_SHARD")
    monkeypatch.delenv("POD_INDEX")
    assert Shard.of(Settings.from_env(), 3) == Shard(0, 3)


def test_the_accepted_events_have_a_partition_per_shard_and_nothing_else_changes():
    two = {t.name: t.partitions for t in catalogue(2)}
    assert two.pop(T.INTAKE_ACCEPTED) == 2
    assert two == {t.name: t.partitions for t in T.TOPICS if t.name != T.INTAKE_ACCEPTED}
    assert catalogue(1) == T.TOPICS


def test_enforcement_merges_only_behind_shards():
    assert Enforcement().order_key is None and Enforcement().marked_inputs == ()
    sharded = Enforcement(intake_shards=2)
    assert sharded.order_key is accepted_order and sharded.marked_inputs == (T.INTAKE_ACCEPTED,)


# ---- enforcement's merge of the shards' partitions, on a broker simulated in memory ----------

@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class Consumer:
    """What MergedInput asks of aiokafka's consumer: assignment, positions, the high watermark
    of the last fetch, seeks and commits."""

    def __init__(self, logs: dict[TP, list[Rec]], start: dict[TP, int]):
        self.logs, self.pos, self.high = logs, dict(start), {}
        self.committed: dict[TP, int] = dict(start)
        self.paused: set[TP] = set()

    def assignment(self):
        return set(self.logs)

    def highwater(self, tp):
        return self.high.get(tp)

    async def position(self, tp):
        return self.pos[tp]

    def seek(self, tp, offset):
        self.pos[tp] = offset

    async def commit(self, offsets):
        for tp, offset in offsets.items():
            self.committed[TP(tp.topic, tp.partition)] = offset

    def pause(self, tp):
        self.paused.add(tp)

    def resume(self, *tps):
        self.paused.difference_update(tps)

    def fetch(self, chosen: list[TP], most: int) -> list[Rec]:
        got = []
        for tp in chosen:
            if tp in self.paused:
                continue
            log = self.logs[tp]
            got += log[self.pos[tp]:self.pos[tp] + most]
            self.pos[tp] = min(len(log), self.pos[tp] + most)
            self.high[tp] = len(log)
        return got


class Msg:
    def __init__(self, consumer):
        self.consumer, self.committed = consumer, None


def _accepted(n: int, when: float, source_partition: int) -> bytes:
    at = (T0 + timedelta(seconds=when)).isoformat()
    return accepted_json(T.BORDER_ARRIVALS, source_partition, n, {"event_id": f"E{n:03d}", "occurred_at": at})


@settings(max_examples=150, deadline=None)
@given(times=st.lists(st.integers(0, 30), min_size=1, max_size=30), data=st.data())
def test_a_flood_through_two_shards_reaches_enforcement_in_one_intakes_order(times, data):
    """The history is in the inbound topics before the shards start; each event is one shard's
    (by its inbound partition). A shard writes its share in its order, in chunks, and a MARK
    once it has written it all; enforcement fetches any partitions at any moment, and now and
    then restarts from its committed offsets. It decides the events in one intake's order: by
    time, then inbound partition and offset, whichever shard wrote first."""
    events = sorted((float(t), data.draw(st.integers(0, 5)), n) for n, t in enumerate(times))
    expected = [f"E{n:03d}" for _, _, n in events]
    logs = {TP(T.INTAKE_ACCEPTED, k): [] for k in (0, 1)}
    share = {k: [e for e in events if e[1] % 2 == k] for k in (0, 1)}
    consumer = Consumer(logs, {tp: 0 for tp in logs})
    merged = MergedInput(accepted_order, Settings(max_batch=4), marked=(T.INTAKE_ACCEPTED,))
    decided: list[str] = []
    done: dict[TP, int] = {}

    async def decide(records, mark):
        assert not mark  # enforcement is not a shard
        for rec in records:
            tp = TP(rec.topic, rec.partition)
            if rec.offset < done.get(tp, 0):
                continue  # below the stored offset: a record read again
            done[tp] = rec.offset + 1
            if rec.value != MARK:
                decided.append(rec.value.split(b'"event_id":"')[1][:4].decode())

    def write(shard: int, most: int) -> None:
        log = logs[TP(T.INTAKE_ACCEPTED, shard)]
        if not share[shard] and log and log[-1].value == MARK:
            return
        for when, partition, n in share[shard][:most]:
            log.append(Rec(T.INTAKE_ACCEPTED, shard, len(log), _accepted(n, when, partition)))
        del share[shard][:most]
        if not share[shard]:
            log.append(Rec(T.INTAKE_ACCEPTED, shard, len(log), MARK))

    async def run() -> None:
        nonlocal consumer, merged
        for _ in range(40):
            step = data.draw(st.sampled_from(["write", "fetch", "fetch", "restart"]))
            if step == "write":
                write(data.draw(st.integers(0, 1)), data.draw(st.integers(1, 4)))
            elif step == "fetch":
                chosen = data.draw(st.lists(st.sampled_from(sorted(logs, key=lambda tp: tp.partition)), min_size=1,
                                            max_size=2, unique=True))
                await merged.take(consumer.fetch(chosen, data.draw(st.integers(1, 3))), Msg(consumer), decide)
            else:  # a restart: what was committed is what the state holds
                consumer = Consumer(logs, consumer.committed)
                merged = MergedInput(accepted_order, Settings(max_batch=4), marked=(T.INTAKE_ACCEPTED,))
        write(0, len(events))
        write(1, len(events))
        for _ in range(2 * len(events) + 10):
            await merged.take(consumer.fetch(sorted(logs, key=lambda tp: tp.partition), 2), Msg(consumer), decide)

    asyncio.run(run())
    assert decided == expected


def test_the_accepted_events_key_is_the_inbound_records_and_anything_else_goes_first():
    rec = Rec(T.INTAKE_ACCEPTED, 1, 9, _accepted(7, 60, 4))
    assert accepted_order(rec) == ((T0 + timedelta(seconds=60)).timestamp(), T.BORDER_ARRIVALS, 4, 7)
    assert accepted_order(Rec(T.INTAKE_ACCEPTED, 1, 10, MARK)) == BEFORE_ALL
    assert accepted_order(Rec(T.MATCHING_INSTRUCTIONS, 0, 3, b'{"kind":"RecordBan"}')) == BEFORE_ALL
    assert accepted_order(Rec(T.INTAKE_ACCEPTED, 0, 0, b'{"event":{}}')) == BEFORE_ALL


def test_the_what_if_reads_enforcements_shards_back_in_one_intakes_order():
    from services.ops.whatif_history import History, Logged

    def screened(n: int, when: float, partition: int, offset: int) -> Logged:
        at = (T0 + timedelta(seconds=when)).isoformat()
        value = (b'{"source_topic":"border.arrivals.v1","source_partition":%d,"source_offset":%d,'
                 b'"event":{"event_id":"E%03d","occurred_at":"%s"}}' % (n % 6, n, n, at.encode()))
        return Logged(T.ENFORCEMENT_SCREENED, partition, offset, None, value)

    history = History()
    for rec in [screened(1, 10, 0, 0), screened(4, 40, 0, 1), Logged(T.ENFORCEMENT_SCREENED, 0, 2, None, MARK),
                screened(2, 20, 1, 0), screened(3, 30, 1, 1), Logged(T.ENFORCEMENT_SCREENED, 1, 2, None, MARK)]:
        history.add(rec)
    assert [r.value.split(b'"event_id":"')[1][:4] for r in history.ordered().inputs] == [b"E001", b"E002", b"E003",
                                                                                          b"E004"]


def test_a_shard_that_reads_every_partition_knows_its_siblings_groups():
    from services.enforcement.app import build as enforcement
    from services.intake.app import build as intake

    runner = enforcement(Settings(enforcement_shards=3, shard=2))
    assert runner.group_id == "oioo-enforcement-s2" and runner.store.ns == "enforcement-s2"
    assert runner._sibling_groups() == ("oioo-enforcement", "oioo-enforcement-s1")
    assert enforcement(Settings())._sibling_groups() == ()
    sharded_intake = intake(Settings(intake_shards=2, shard=1, signing_keys_file="deploy/dev-keys.json"))
    assert sharded_intake.group_id == "oioo-intake" and sharded_intake._sibling_groups() == ()


def test_the_ops_tools_list_every_shard_of_enforcements_group(tmp_path, monkeypatch):
    from services.ops import health, stack_env

    assert health.groups_for({}) == health.GROUP_INPUTS
    env_file = tmp_path / "stack.env"
    env_file.write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1\nINTAKE_SHARDS=2\nENFORCEMENT_SHARDS=3\n")
    monkeypatch.delenv("ENFORCEMENT_SHARDS", raising=False)
    groups = health.groups_for(stack_env.load(env_file))
    assert set(groups) - set(health.GROUP_INPUTS) == {"oioo-enforcement-s1", "oioo-enforcement-s2"}
    assert groups["oioo-enforcement-s2"] == health.GROUP_INPUTS["oioo-enforcement"]
