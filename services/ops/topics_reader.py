"""Reading topics as ops monitoring does: every partition from the beginning, no consumer group.

No group means no rebalance to wait for and no offsets left behind: the CLI reads what is there
now and stops; the dashboard keeps reading. Partition counts come from the topic catalogue,
never from the broker's metadata, because asking a Kafka-compatible broker (Tansu) about a topic
it lacks makes it create one with the wrong partition count.

"The end" of a partition is the high watermark carried by a fetch response, not the answer to
ListOffsets(latest): Tansu answers that with the start of the last batch plus one.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.topics import TOPICS_BY_NAME


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    header_list: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def doc(self) -> dict[str, Any] | None:
        """The value as a JSON object, or None when it is not one."""
        try:
            doc = json.loads(self.value)
        except (ValueError, TypeError):
            return None
        return doc if isinstance(doc, dict) else None


def partitions(topics: Iterable[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics for p in range(TOPICS_BY_NAME[t].partitions)]


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=50,
                            max_partition_fetch_bytes=2 * 1024 * 1024)


async def _started(bootstrap: str) -> AIOKafkaConsumer:
    c = _consumer(bootstrap)
    try:
        await c.start()
    except BaseException:
        await c.stop()  # a failed start still holds a client
        raise
    return c


def _record(rec) -> Record:
    header_list = [(k, v) for k, v in (rec.headers or ())]
    key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
    return Record(rec.topic, rec.partition, rec.offset, key, rec.value or b"", dict(header_list), header_list)


async def _read_to_end(c: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float) -> list[Record]:
    """From each partition's current position to the high watermark seen by its first fetch."""
    out: list[Record] = []
    ends: dict[TopicPartition, int] = {}
    pending = set(tps)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read to the end of {sorted(map(str, pending))} in {timeout:.0f}s")
        got = await c.getmany(*pending, timeout_ms=100)
        for tp, recs in got.items():
            out.extend(_record(r) for r in recs)
        for tp in list(pending):
            if tp not in ends:
                hw = c.highwater(tp)
                if hw is None:
                    continue
                ends[tp] = hw
            if await c.position(tp) >= ends[tp]:
                pending.discard(tp)
    return [r for r in out if r.offset < ends[TopicPartition(r.topic, r.partition)]]


async def read_all(bootstrap: str, topics: Iterable[str], timeout: float = 60.0) -> list[Record]:
    """Everything on `topics` now, each partition in offset order."""
    tps = partitions(topics)
    c = await _started(bootstrap)
    try:
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        return await _read_to_end(c, tps, timeout)
    finally:
        await c.stop()


async def read_one(bootstrap: str, topic: str, partition: int, offset: int, timeout: float = 10.0) -> Record | None:
    """The record at one place in the log, or None if it is no longer (or never was) there."""
    if topic not in TOPICS_BY_NAME or not 0 <= partition < TOPICS_BY_NAME[topic].partitions:
        return None
    tp = TopicPartition(topic, partition)
    c = await _started(bootstrap)
    try:
        c.assign([tp])
        c.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await c.getmany(tp, timeout_ms=200)
            for rec in got.get(tp, []):
                return _record(rec) if rec.offset == offset else None
            hw = c.highwater(tp)
            if hw is not None and hw <= offset:
                return None
        return None
    finally:
        await c.stop()


class EndOffsets:
    """High watermarks of partitions, read from fresh fetches of their last batch; kept open
    between calls (the dashboard asks every few seconds)."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()

    async def start(self) -> "EndOffsets":
        self.consumer = await _started(self.bootstrap)
        return self

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def __call__(self, tps: list[TopicPartition], timeout: float = 10.0) -> dict[TopicPartition, int]:
        c = self.consumer
        if not set(tps) <= self._assigned:
            self._assigned |= set(tps)
            c.assign(sorted(self._assigned))
        asked_ms = int(time.time() * 1000)
        listed = await c.end_offsets(tps)
        for tp in tps:
            c.seek(tp, max(0, listed[tp] - 1))
        ends: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(tps):
            if time.monotonic() > deadline:
                raise TimeoutError("no fetch answered for " + ", ".join(str(tp) for tp in tps if tp not in ends))
            await c.getmany(*[tp for tp in tps if tp not in ends], timeout_ms=100)
            for tp in tps:
                hw = c.highwater(tp)
                # only a fetch answered after this call began tells today's end
                if tp not in ends and hw is not None and (c.last_poll_timestamp(tp) or 0) >= asked_ms:
                    ends[tp] = hw
        return ends


async def end_offsets(bootstrap: str, tps: list[TopicPartition], timeout: float = 10.0) -> dict[TopicPartition, int]:
    """The high watermark of each partition, once."""
    probe = await EndOffsets(bootstrap).start()
    try:
        return await probe(tps, timeout)
    finally:
        await probe.stop()


async def latest_time(bootstrap: str, topics: Iterable[str], timeout: float = 10.0) -> datetime | None:
    """The latest `occurred_at` among the last records of `topics`: the system's event time."""
    tps = partitions(topics)
    c = await _started(bootstrap)
    try:
        c.assign(tps)
        listed = await c.end_offsets(tps)
        for tp in tps:
            c.seek(tp, max(0, listed[tp] - 1))
        latest: datetime | None = None
        for rec in await _read_to_end(c, tps, timeout):
            doc = rec.doc or {}
            try:
                when = datetime.fromisoformat(str(doc.get("occurred_at")).replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is not None and (latest is None or when > latest):
                latest = when
        return latest
    finally:
        await c.stop()


async def follow(bootstrap: str, topics: Iterable[str], idle_ms: int = 500) -> AsyncIterator[list[Record]]:
    """Everything on `topics` from the beginning, then whatever comes, batch by batch, forever.
    An empty batch is yielded when nothing came for `idle_ms`, so the caller can do other work."""
    tps = partitions(topics)
    c = await _started(bootstrap)
    try:
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        while True:
            got = await c.getmany(timeout_ms=idle_ms)
            batch = [_record(r) for recs in got.values() for r in recs]
            batch.sort(key=lambda r: (r.topic, r.partition, r.offset))
            yield batch
            if not got:
                await asyncio.sleep(0)
    finally:
        await c.stop()
