"""The inbound partitions merged in event-time order, so a flood decides as a slow run does.

Kafka keeps order within a partition only. A replay publishes years of history at once into
several topics of several partitions each, and a consumer's fetches interleave them however
they arrive: without a merge, matching would see a 2025 arrival before the 2019 casework
published just before it, its clock would race ahead, and the pairs would depend on the
interleaving. Published in event-time order, the same history gives the same order here
whatever the fetches do.

The merge is the one Kafka Streams uses: hold what was fetched, per partition, and hand on the
earliest head (by event time, then topic, partition and offset) for as long as every assigned
partition either holds something or is caught up (nothing more to read: then waiting for it
would only stall live traffic). A partition that is behind and holds nothing stops the merge
until its records come. Records held are not handed on and so not committed: the group's
offset of a partition is its first record not yet decided, so a crash loses nothing.

Pure: the runner tells it which partitions are caught up and does the seeks, pauses and commits.
"""
from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

Place = tuple[str, int]  # (topic, partition)


class EventTimeMerge:
    def __init__(self, key: Callable[[Any], float]):
        self._key = key
        self.held: dict[Place, deque[tuple[tuple, Any]]] = {}
        self.received: dict[Place, int] = {}  # offset after the last record fetched, per partition
        self._pending: dict[Place, int] = {}  # first offset handed on but not yet done, per partition
        self._committed: dict[Place, int] = {}

    def add(self, records: Iterable[Any], assigned: set[Place]) -> None:
        """Take a fetched batch. A partition no longer assigned is forgotten (its next owner
        reads it from the committed offset); one read again from an earlier offset (a rewind
        after a rebalance) drops what it held from there on."""
        for place in [p for p in self.held if p not in assigned]:
            del self.held[place]
            self.received.pop(place, None)
            self._committed.pop(place, None)
        for rec in records:
            place = (rec.topic, rec.partition)
            if place not in assigned:
                continue
            queue = self.held.get(place)
            if queue is None:
                queue = self.held[place] = deque()
            elif queue and rec.offset <= queue[-1][1].offset:
                while queue and queue[-1][1].offset >= rec.offset:
                    queue.pop()
            queue.append(((self._key(rec), rec.topic, rec.partition, rec.offset), rec))
            self.received[place] = rec.offset + 1

    def release(self, caught_up: set[Place], assigned: Iterable[Place], limit: int | None = None) -> list[Any]:
        """The records to decide now (at most `limit`), in merge order. They stay owed (`rewind`
        brings them back) until `done`."""
        if any(not self.held.get(p) and p not in caught_up for p in assigned):
            return []
        heads = [(queue[0][0], place) for place, queue in self.held.items() if queue]
        heapq.heapify(heads)
        out: list[Any] = []
        while heads and len(out) != limit:
            _, place = heads[0]
            queue = self.held[place]
            _, rec = queue.popleft()
            out.append(rec)
            self._pending.setdefault(place, rec.offset)
            if queue:
                heapq.heapreplace(heads, (queue[0][0], place))
            elif place in caught_up:
                heapq.heappop(heads)
            else:
                break  # behind, and nothing of it in hand: its next record may come earlier
        return out

    def done(self) -> None:
        """What `release` handed on is decided and committed."""
        self._pending.clear()

    def rewind(self) -> dict[Place, int]:
        """After a failed batch: forget everything held and return, per partition, the offset to
        read again from (the first record not decided)."""
        seek = {place: self._first_owed(place) for place in set(self.held) | set(self._pending)}
        seek = {place: offset for place, offset in seek.items() if offset is not None}
        self.held.clear()
        self._pending.clear()
        for place, offset in seek.items():
            self.received[place] = offset
        return seek

    def to_commit(self) -> dict[Place, int]:
        """The group offsets that moved since the last call: per partition, its first record not
        yet decided (or the end of what was fetched)."""
        moved: dict[Place, int] = {}
        for place in self.received:
            offset = self._first_owed(place)
            if offset is not None and offset != self._committed.get(place):
                moved[place] = self._committed[place] = offset
        return moved

    def holding(self) -> int:
        return sum(len(q) for q in self.held.values())

    def _first_owed(self, place: Place) -> int | None:
        if place in self._pending:
            return self._pending[place]
        queue = self.held.get(place)
        if queue:
            return queue[0][1].offset
        return self.received.get(place)
