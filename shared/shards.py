"""Intake in shards: each shard decides its own share of the inbound partitions.

Shard k of N owns partition p of every inbound topic where p % N == k (`ops.control.v1`, with
one partition, is shard 0's). Each shard is a writer of its own: its lease, state and outbox
under its own namespace (`intake` for shard 0, `intake-s1`, ... for the others), and it
writes what it accepted to partition k of `internal.intake.accepted.v1`, which then has N
partitions. Its duplicate filter needs no other shard's: producers key by subject, so a retried
event comes back on the same partition; one sent again under another key passes intake and is
dropped by enforcement and matching, which filter by event id too.

Each shard's partition is in the shard's merge order (shared/merge.py), and enforcement merges
the N partitions again with the same key, so it sees the order one intake would have given.
A merge may pass over a partition with nothing to read only while that partition's writer has
nothing left either, and the log alone cannot say so: a shard that ends a batch with every
input read to its end writes a MARK after what it accepted. Enforcement takes a shard's
partition as caught up only while the last record it read there is a MARK.

Changing the number of shards needs no migration: a shard that is given partitions its stored
offsets do not cover replays them from the log to rebuild its filter (shared/catch_up.py),
publishing nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.topics import TOPICS_BY_NAME

# What a shard writes after its accepted events when it has read every input to its end. Not
# an event: enforcement's runner takes it off the input before the service sees it.
MARK = b'{"intake_caught_up":true}'


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index must be 0..count-1")

    @property
    def split(self) -> bool:
        return self.count > 1

    def namespace(self, service: str) -> str:
        """Where the shard keeps its lease, state and outbox in Redis."""
        return service if self.index == 0 else f"{service}-s{self.index}"

    def places(self, input_topics: tuple[str, ...]) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this shard consumes, from the topic catalogue."""
        return [(topic, p) for topic in input_topics for p in range(TOPICS_BY_NAME[topic].partitions)
                if p % self.count == self.index]


def is_mark(value: bytes | None) -> bool:
    return value == MARK
