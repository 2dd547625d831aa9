"""Which partition a keyed message goes to: aiokafka's default partitioner (the Java client's
murmur2 of the key, modulo the partitions), with the hash computed faster. The relay's producer
uses it, so every key lands exactly where aiokafka would put it."""
from __future__ import annotations

import struct
from functools import lru_cache

from aiokafka.partitioner import DefaultPartitioner


def murmur2(data: bytes) -> int:
    """aiokafka.partitioner.murmur2 (the Java client's), the same number for every key: read
    four bytes at a time as little-endian words instead of one byte at a time."""
    length = len(data)
    m = 0x5BD1E995
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


_key_hash = lru_cache(maxsize=1 << 14)(murmur2)  # a subject's messages often share its key
_random_partition = DefaultPartitioner()


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner, the same partition for every key (murmur2 of the key,
    modulo the partitions), a random one for no key; only the hash is computed faster."""
    if key is None:
        return _random_partition(key, all_partitions, available)
    digest = _key_hash(key) if type(key) is bytes else murmur2(key)
    return all_partitions[(digest & 0x7FFFFFFF) % len(all_partitions)]
