"""The consumer's side of the event-time merge (shared/merge.py): what the runner does with a
fetched batch when its service merges its input partitions (intake).

The merge decides which records go now; this takes them in chunks of MAX_BATCH to the runner,
commits each partition's group offset up to its first record still held (FastStream would
commit the whole fetch), reads every partition again from its first record not decided when a
chunk fails (FastStream would rewind only the fetch's own records), and pauses a partition that
holds much more than the others.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from faststream.message import AckStatus

from shared.merge import EventTimeMerge
from shared.settings import Settings


class MergedInput:
    def __init__(self, key: Callable[[ConsumerRecord], float], settings: Settings):
        self.merge = EventTimeMerge(key)
        self.settings = settings
        self.paused: set[TopicPartition] = set()

    async def take(self, records: list[ConsumerRecord], msg: Any,
                   decide: Callable[[list[ConsumerRecord]], Awaitable[None]]) -> None:
        consumer = msg.consumer
        msg.committed = AckStatus.ACKED  # offsets are ours to commit, or to rewind
        assigned = consumer.assignment()
        places = {(tp.topic, tp.partition) for tp in assigned}
        self.merge.add(records, places)
        caught_up = set()
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is not None and await consumer.position(tp) >= high:
                caught_up.add((tp.topic, tp.partition))
        while released := self.merge.release(caught_up, places, self.settings.max_batch):
            try:
                await decide(released)
            except BaseException:
                for (topic, partition), offset in self.merge.rewind().items():
                    consumer.seek(TopicPartition(topic, partition), offset)
                if self.paused:
                    consumer.resume(*self.paused)
                    self.paused.clear()
                raise
            self.merge.done()
            moved = self.merge.to_commit()
            if moved:
                await consumer.commit({TopicPartition(t, p): o for (t, p), o in moved.items()})
        self._pace(consumer, assigned)

    def _pace(self, consumer: Any, assigned: set[TopicPartition]) -> None:
        """Pause a partition that holds two fetches' worth while the merge waits for the others, so
        the next fetches go to those (Tansu gives the first partition of a fetch all its bytes).
        aiokafka drops what it fetched for a paused partition: one fetch is under one getmany."""
        limit = 2 * self.settings.merge_fetch_bytes // 512
        self.paused &= assigned
        for tp in assigned:
            held = len(self.merge.held.get((tp.topic, tp.partition), ()))
            if held > limit and tp not in self.paused:
                consumer.pause(tp)
                self.paused.add(tp)
            elif held <= limit // 2 and tp in self.paused:
                consumer.resume(tp)
                self.paused.discard(tp)
