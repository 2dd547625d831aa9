"""Kafka plumbing for the simulation and the benchmark.

- `settle()`: the barrier. Returns once every service's consumer group has committed offsets
  equal to the end offsets of all partitions of its input topics, seen twice in a row.
- `SignedPublisher`: a plain aiokafka producer (acks=all, idempotence off: Tansu's memory store
  refuses InitProducerId) that signs each value with the dev keyring's key for the topic.
- `Collector`: a plain consumer (no group) of the outbound topics, all partitions, from the
  beginning; `drain()` reads up to the end offsets as they are now.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.ops.health import GROUP_INPUTS
from shared import topics
from shared.signing import Keyring, signed_headers

DEFAULT_GROUPS = tuple(GROUP_INPUTS)

OUTBOUND_TOPICS: tuple[str, ...] = (
    topics.LIAISON_UK_RETURN_REQUESTS, topics.LIAISON_UK_ADMISSION_NOTICES, topics.ENFORCEMENT_BANS,
    topics.OPS_BALANCE, topics.OPS_ALERTS, topics.OPS_AUDIT, topics.OPS_DEAD_LETTERS,
)


class SettleTimeout(TimeoutError):
    pass


class EndOffsets:
    """True end offsets (high watermarks) of partitions.

    Why not just `consumer.end_offsets()`: Tansu answers ListOffsets(latest) with the base
    offset of the partition's LAST BATCH plus one, not the high watermark (7 records written
    as one batch at offsets 0-6 give "end" 1). Its Fetch responses carry the right high
    watermark, so this reads the last batch (seek to that answer minus one) and takes the
    high watermark of a fetch issued after the call began. With a broker whose ListOffsets
    is right, this reads the last record only: same answer.
    """

    def __init__(self, bootstrap: str):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=5)
        self._assigned: set[TopicPartition] = set()

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __call__(self, tps: Iterable[TopicPartition], timeout: float = 10.0) -> dict[TopicPartition, int]:
        tps = list(tps)
        c = self.consumer
        if not set(tps) <= self._assigned:
            self._assigned |= set(tps)
            c.assign(sorted(self._assigned))
            c.pause(*self._assigned)
        listed = await c.end_offsets(tps)
        ends = {tp: 0 for tp in tps if listed[tp] <= 0}
        pending = {tp for tp in tps if listed[tp] > 0}
        for tp in pending:
            c.seek(tp, listed[tp] - 1)
        c.resume(*pending)
        deadline = time.monotonic() + timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read the last batch of {sorted(map(str, pending))}")
                got = await c.getmany(*pending, timeout_ms=100)
                for tp, recs in got.items():
                    if tp in pending and recs:
                        hw = c.highwater(tp)
                        ends[tp] = max(hw if hw is not None else 0, recs[-1].offset + 1)
                        pending.discard(tp)
                        c.pause(tp)
        finally:
            c.pause(*[tp for tp in tps if tp in self._assigned])
        return ends


class _Probe:
    """An admin client and a group-less consumer, kept open across settle() calls."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False)
        self.ends = EndOffsets(bootstrap)
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()
        await self.ends.start()

    async def stop(self) -> None:
        for closer in (self.admin.close, self.consumer.stop, self.ends.stop):
            try:
                await closer()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def tps(self, topic: str) -> list[TopicPartition]:
        if topic not in self.partitions:
            parts = self.consumer.partitions_for_topic(topic)
            if not parts:
                await self.consumer.topics()
                parts = self.consumer.partitions_for_topic(topic) or set()
            if not parts:
                raise RuntimeError(f"topic {topic} has no partitions (not created?)")
            self.partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]
        return self.partitions[topic]

    async def lag(self, groups: Sequence[str]) -> dict[str, dict[TopicPartition, tuple[int, int]]]:
        """Per group, the partitions not settled: tp -> (committed, end). Empty when settled.

        Committed offsets are read first and end offsets after: a commit means the batch's
        outputs were published before it, so a downstream end that grew meanwhile is seen."""
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            # partitions named explicitly: Tansu answers the "all partitions" form (null topics)
            # with a response aiokafka cannot decode
            mine = [tp for t in GROUP_INPUTS[group] for tp in await self.tps(t)]
            got = await self.admin.list_consumer_group_offsets(group, partitions=mine)
            committed[group] = {tp: (om.offset if om is not None else -1) for tp, om in got.items()}
        wanted = {tp for g in groups for t in GROUP_INPUTS[g] for tp in await self.tps(t)}
        ends = await self.ends(wanted)
        out: dict[str, dict[TopicPartition, tuple[int, int]]] = {}
        for group in groups:
            for t in GROUP_INPUTS[group]:
                for tp in await self.tps(t):
                    end = ends[tp]
                    done = committed[group].get(tp, -1)
                    if end == 0:
                        continue  # never written: no commit expected
                    if done != end:
                        out.setdefault(group, {})[tp] = (done, end)
        return out


_probes: dict[str, _Probe] = {}


async def _probe(bootstrap: str) -> _Probe:
    probe = _probes.get(bootstrap)
    if probe is None:
        probe = _Probe(bootstrap)
        await probe.start()
        _probes[bootstrap] = probe
    return probe


async def close_probes() -> None:
    while _probes:
        _, probe = _probes.popitem()
        await probe.stop()


async def settle(bootstrap: str, groups: Iterable[str] = DEFAULT_GROUPS, timeout: float = 60.0,
                 interval: float = 0.03) -> float:
    """Wait until every group has consumed (committed) everything on its input topics, twice
    in a row. Returns the seconds waited; raises SettleTimeout naming the lagging partitions."""
    groups = tuple(groups)
    unknown = [g for g in groups if g not in GROUP_INPUTS]
    if unknown:
        raise ValueError(f"unknown groups {unknown}; known: {sorted(GROUP_INPUTS)}")
    probe = await _probe(bootstrap)
    t0 = time.monotonic()
    deadline = t0 + timeout
    in_a_row = 0
    lagging: dict = {}
    while True:
        lagging = await probe.lag(groups)
        in_a_row = 0 if lagging else in_a_row + 1
        if in_a_row >= 2:
            return time.monotonic() - t0
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{g}: " + ", ".join(f"{tp.topic}[{tp.partition}] {c}/{e}"
                                                    for tp, (c, e) in sorted(parts.items()))
                               for g, parts in lagging.items())
            raise SettleTimeout(f"not settled after {timeout:.0f}s: {detail}")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- publishing

@dataclass
class Sent:
    topic: str
    partition: int
    offset: int


class SignedPublisher:
    def __init__(self, bootstrap: str, keyring: Keyring, linger_ms: int = 5, request_timeout_ms: int = 40000):
        self.keyring = keyring
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=False, linger_ms=linger_ms,
                                         max_batch_size=256 * 1024, request_timeout_ms=request_timeout_ms)
        self._pending: list[asyncio.Future] = []

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    @staticmethod
    def encode(event: Mapping | bytes) -> bytes:
        if isinstance(event, (bytes, bytearray)):
            return bytes(event)
        return json.dumps(event, separators=(",", ":")).encode("utf-8")

    async def send(self, topic: str, key: str | None, value: bytes,
                   headers: Mapping[str, str] | None = None) -> asyncio.Future:
        """Queue one record; `headers` None means: sign with the keyring's key for `topic`."""
        if headers is None:
            headers = signed_headers(self.keyring.key_for_topic(topic), value)
        hdrs = [("content-type", b"application/json")] + [(k, v.encode()) for k, v in headers.items()]
        fut = await self.producer.send(topic, value, key=key.encode() if key is not None else None,
                                       headers=hdrs)
        self._pending.append(fut)
        return fut

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    @staticmethod
    def where(fut: asyncio.Future) -> Sent:
        md = fut.result()
        return Sent(md.topic, md.partition, md.offset)


# --------------------------------------------------------------------------- collecting

@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Collector:
    """Everything on the given topics, from the beginning, in per-partition order."""

    def __init__(self, bootstrap: str, topic_names: Sequence[str] = OUTBOUND_TOPICS):
        self.topic_names = tuple(topic_names)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, auto_offset_reset="earliest",
                                         max_partition_fetch_bytes=8 * 1024 * 1024)
        self.tps: list[TopicPartition] = []
        self.ends = EndOffsets(bootstrap)

    async def start(self) -> None:
        await self.ends.start()
        await self.consumer.start()
        await self.consumer.topics()
        for t in self.topic_names:
            parts = self.consumer.partitions_for_topic(t) or set()
            self.tps += [TopicPartition(t, p) for p in sorted(parts)]
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.ends.stop()

    async def drain(self, timeout: float = 30.0) -> list[Record]:
        """What was written since the last drain, up to the end offsets as of now."""
        ends = await self.ends(self.tps)
        todo = {tp for tp in self.tps if await self.consumer.position(tp) < ends[tp]}
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"collector could not read up to the end of {sorted(map(str, todo))}")
            got = await self.consumer.getmany(*todo, timeout_ms=200, max_records=5000)
            for tp, recs in got.items():
                out += [Record(r.topic, r.partition, r.offset, r.key, r.value) for r in recs]
            for tp in list(todo):
                if await self.consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        return out
