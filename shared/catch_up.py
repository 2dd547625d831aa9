"""Redis behind Kafka: replay what the consumer group's committed offsets cover and Redis's
offsets do not (everything, for an empty Redis; the events since the backup, for a restored
one), in chunks, publishing nothing: what the committed offsets cover was published before."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.backoff import until_done
from shared.merge import EventTimeMerge
from shared.settings import Settings

log = logging.getLogger("oioo.runtime")


class LogShort(Exception):
    """The log does not hold what the committed offsets cover: the state cannot be rebuilt."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


class CatchUp:
    def __init__(self, settings: Settings, group_id: str, input_topics: tuple[str, ...],
                 expiring_topics: tuple[str, ...], kafka_options: dict, broker_outage: Callable[[bool], None],
                 instance: str, only: set[tuple[str, int]] | None = None,
                 order_key: Callable[[ConsumerRecord], Any] | None = None, siblings: tuple[str, ...] = ()):
        self.settings, self.group_id, self.instance = settings, group_id, instance
        self.only = only  # a shard's partitions (shared/shards.py); None: every partition of the inputs
        self.order_key = order_key  # a merged input is replayed in the merge's order too (shared/merge.py)
        # the groups of the other shards that read the same partitions (enforcement's): a new
        # shard's group has no offsets, and what they all consumed was published by one of them
        self.siblings = siblings
        self.input_topics, self.expiring_topics = input_topics, expiring_topics
        self.kafka_options, self.broker_outage = kafka_options, broker_outage

    async def run(self, offsets: dict[str, int],
                  replay: Callable[[list[ConsumerRecord]], Awaitable[None]]) -> None:
        ends = await until_done("broker (committed offsets)", self.committed_offsets, self.broker_outage)
        gaps = {tp: (offsets.get(f"{tp.topic}:{tp.partition}", 0), end) for tp, end in ends.items()}
        gaps = {tp: (start, end) for tp, (start, end) in gaps.items() if start < end}
        if not gaps:
            return
        log.warning("%s: Redis is behind the committed offsets on %d partition(s); replaying %d records",
                    self.instance, len(gaps), sum(e - s for s, e in gaps.values()))
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None,
                                  enable_auto_commit=False, **self.kafka_options)
        await until_done("broker (reader)", reader.start, self.broker_outage)
        try:
            reader.assign(list(gaps))
            first = await reader.beginning_offsets(list(gaps))
            # an input with a retention period loses its oldest records by design: start from
            # the oldest one left rather than call the log incomplete
            gaps = {tp: (max(start, first[tp]) if tp.topic in self.expiring_topics else start, end)
                    for tp, (start, end) in gaps.items()}
            short = [tp for tp, (start, end) in gaps.items() if first[tp] > start]
            if short:
                raise LogShort(_where(short, gaps, first, {tp: "?" for tp in short}))
            for tp, (start, _) in gaps.items():
                reader.seek(tp, start)
            remaining = dict(gaps)
            places = {(tp.topic, tp.partition) for tp in gaps}
            merge = EventTimeMerge(self.order_key) if self.order_key is not None else None
            while remaining:
                got = await reader.getmany(*remaining, timeout_ms=500, max_records=self.settings.replay_chunk)
                chunk = [r for tp, recs in got.items() for r in recs if r.offset < gaps[tp][1]]
                if merge is None:
                    if chunk:
                        await replay(chunk)
                else:
                    # every record to replay is in the log already: a partition read to its gap's
                    # end is caught up, and the merge is exact
                    merge.add(chunk, places)
                    read = {(tp.topic, tp.partition) for tp in gaps
                            if tp not in remaining or await reader.position(tp) >= gaps[tp][1]}
                    while released := merge.release(read, places, self.settings.replay_chunk):
                        await replay(released)
                        merge.done()
                # Where the log ends is the high watermark a fetch reports: ListOffsets(latest)
                # is not trusted, Tansu answers it with the base offset of the last batch + 1.
                ends = {tp: reader.highwater(tp) for tp in remaining if not got.get(tp)}
                short = [tp for tp, hw in ends.items()
                         if hw is not None and hw <= await reader.position(tp) < gaps[tp][1]]
                if short:
                    raise LogShort(_where(short, gaps, first, ends))
                for tp in list(remaining):
                    if await reader.position(tp) >= gaps[tp][1]:
                        remaining.pop(tp)
        finally:
            await reader.stop()

    async def committed_offsets(self) -> dict[TopicPartition, int]:
        """The group's committed offsets; for a group that has none, a new shard's (shared/shards.py),
        the least its siblings committed, partition by partition: what every one of them consumed."""
        ends = await self._committed(self.group_id)
        if ends or not self.siblings:
            return ends
        theirs = [got for got in [await self._committed(g) for g in self.siblings] if got]
        if theirs:
            log.warning("%s: a new shard: replaying what its %d sibling shard(s) all consumed", self.instance,
                        len(theirs))
        return {tp: min(got.get(tp, 0) for got in theirs) for tp in set().union(*theirs)} if theirs else {}

    async def _committed(self, group_id: str) -> dict[TopicPartition, int]:
        probe = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                 group_id=group_id, enable_auto_commit=False, **self.kafka_options)
        await probe.start()
        try:
            ends = {}
            for topic in self.input_topics:
                parts = probe.partitions_for_topic(topic)
                if parts is None:
                    await probe.topics()
                    parts = probe.partitions_for_topic(topic) or set()
                for p in parts:
                    if self.only is not None and (topic, p) not in self.only:
                        continue
                    tp = TopicPartition(topic, p)
                    committed = await probe.committed(tp)
                    if committed:
                        ends[tp] = committed
            return ends
        finally:
            await probe.stop()


def _where(short, gaps, first, last) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition} holds {first[tp]}..{last[tp]}, needs {gaps[tp][0]}..{gaps[tp][1]}"
                     for tp in short)
