"""Intake and enforcement in shards: each shard a writer of its own over its own share.

*Intake* splits by partition: shard k of N owns partition p of every inbound topic where
p % N == k (`ops.control.v1`, with one partition, is shard 0's). Its duplicate filter needs no
other shard's: producers key by subject, so a retried event comes back on the same partition;
one sent again under another key passes intake and is dropped by enforcement and matching,
which filter by event id too.

*Enforcement* splits by person: its index is per biometric, so every enforcement shard reads
every accepted event (in a consumer group of its own) and decides only those of its own people,
by the biometric's bucket (`bucket_of`; events that name no biometric are shard 0's), and the
bans of its own people, by the bucket the screened arrival carried to matching and matching
carries onto its `RecordBan`. The bucket is one of 4096 whatever the count, so a ban recorded
before the count changed still finds its shard.

Each shard keeps its lease, state and outbox under its own namespace (`intake` for shard 0,
`intake-s1`, ...), and writes its output (`sharded_output`) to a partition of its own, k, in its
merge order. The reader behind (enforcement behind intake's shards, matching behind
enforcement's) merges the partitions again by the same key (the inbound record's time, topic,
partition and offset, carried in the envelopes), so it sees the order one instance would have
given. A merge may pass over a partition with nothing to read only while that partition's writer
has nothing left either, and the log alone cannot say so: a shard that ends a batch with every
input read to its end writes a MARK after its output, and the reader takes a shard's partition
as caught up only while the last record it read there is a MARK.

Changing intake's count needs no migration: a shard given partitions its stored offsets do not
cover replays them from the log to rebuild its filter, publishing nothing. Changing
enforcement's moves people between shards: its shards' state is rebuilt from the log.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.settings import Settings
from shared.topics import TOPICS_BY_NAME

# What a shard writes after its output when it has read every input to its end. Not an event:
# the runner behind takes it off its input before the service sees it.
MARK = b'{"caught_up":true}'
BUCKETS = 4096  # a person's bucket: which enforcement shard holds them is bucket % count


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index must be 0..count-1")

    @classmethod
    def of(cls, settings: Settings, count: int) -> "Shard":
        """SERVICE_SHARD, else a StatefulSet pod's POD_INDEX modulo the count (pods k and k+N
        are shard k's active and standby), else 0."""
        if settings.shard is not None:
            return cls(settings.shard, count)
        return cls(settings.pod_index % count if settings.pod_index is not None else 0, count)

    @property
    def split(self) -> bool:
        return self.count > 1

    def namespace(self, service: str) -> str:
        """Where the shard keeps its lease, state and outbox in Redis (and names its group when
        it reads every partition)."""
        return service if self.index == 0 else f"{service}-s{self.index}"

    def places(self, input_topics: tuple[str, ...]) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this shard consumes when it splits by partition."""
        return [(topic, p) for topic in input_topics for p in range(TOPICS_BY_NAME[topic].partitions)
                if p % self.count == self.index]

    def owns(self, bucket: int | None) -> bool:
        """Whether a person in `bucket` is this shard's (no bucket: shard 0's)."""
        return (bucket or 0) % self.count == self.index


def bucket_of(biometric: bytes) -> int:
    return int.from_bytes(hashlib.sha256(biometric).digest()[:4], "big") % BUCKETS


def is_mark(value: bytes | None) -> bool:
    return value == MARK
