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

from shared.merge import EventTimeMerge, Place
from shared.settings import Settings
from shared.shards import is_mark


class MergedInput:
    """`marked`: the input topics written by shards (shared/shards.py), whose partitions are
    caught up only while the last record read there is a MARK. `marks`: this service is a shard,
    and `decide` is told when a chunk leaves every input read to its end (then it writes a MARK)."""

    def __init__(self, key: Callable[[ConsumerRecord], Any], settings: Settings,
                 marked: tuple[str, ...] = (), marks: bool = False):
        self.merge = EventTimeMerge(key)
        self.settings = settings
        self.paused: set[TopicPartition] = set()
        self.marked = frozenset(marked)
        self.marks = marks
        self.last_mark: dict[Place, bool] = {}  # per marked partition: is the last record read a MARK?
        self._probed: set[Place] = set()

    async def take(self, records: list[ConsumerRecord], msg: Any,
                   decide: Callable[[list[ConsumerRecord], bool], Awaitable[None]]) -> None:
        consumer = msg.consumer
        msg.committed = AckStatus.ACKED  # offsets are ours to commit, or to rewind
        assigned = consumer.assignment()
        places = {(tp.topic, tp.partition) for tp in assigned}
        self.merge.add(records, places)
        if self.marked:
            self._note_marks(records, places)
        caught_up = await self._caught_up(consumer, assigned)
        while released := self.merge.release(caught_up, places, self.settings.max_batch):
            try:
                await decide(released, self.marks and not self.merge.holding() and caught_up == places)
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

    async def idle(self, consumer: Any) -> bool:
        """Nothing held, and every input read to its end (a shard then writes a MARK)."""
        if self.merge.holding():
            return False
        assigned = consumer.assignment()
        return bool(assigned) and len(await self._caught_up(consumer, assigned)) == len(assigned)

    async def positions(self, consumer: Any) -> tuple:
        return tuple(sorted([(tp.topic, tp.partition, await consumer.position(tp)) for tp in consumer.assignment()]))

    async def _caught_up(self, consumer: Any, assigned: set[TopicPartition]) -> set[Place]:
        """The partitions read to their end; a marked one only while its last record is a MARK.
        A marked partition read to its end before this instance read anything of it is read
        again from its last record, once, to see whether that is a MARK (the runner skips the
        record: its offset is below the stored one)."""
        caught_up = set()
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None or await consumer.position(tp) < high:
                continue
            place = (tp.topic, tp.partition)
            if tp.topic in self.marked:
                last = self.last_mark.get(place)
                if last is None and high > 0 and place not in self._probed:
                    self._probed.add(place)
                    consumer.seek(tp, high - 1)
                if not last:
                    continue
            caught_up.add(place)
        return caught_up

    def _note_marks(self, records: list[ConsumerRecord], places: set[Place]) -> None:
        for place in [p for p in self.last_mark if p not in places]:
            del self.last_mark[place]
            self._probed.discard(place)
        for rec in records:
            if rec.topic in self.marked:
                self.last_mark[(rec.topic, rec.partition)] = is_mark(rec.value)

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
