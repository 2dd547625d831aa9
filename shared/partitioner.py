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


# Many keys hashed at once without numpy (which would add about 12 MB to every service): each
# key is a 64-bit lane of one Python integer, and every step of murmur2 is done on all the lanes
# by one integer operation. A lane's value stays under 2**32 after every mask, and a product of
# it with M (under 2**31) under 2**63, so no lane ever carries into the next; a right shift
# brings the next lane's low bits into the top of this one, which the mask drops.
BULK_MIN = 16  # below this many keys of one length, the per-key loop is as quick
_M = 0x5BD1E995


def murmur2_many(keys: list[bytes], length: int) -> list[int]:
    """`murmur2` of each of many keys of the same `length`, in order (the same numbers)."""
    n = len(keys)
    data = b"".join(keys)
    low32 = int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * n, "little")
    ones = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * n, "little")

    def lanes(first: int, count: int) -> int:
        """Bytes first..first+count-1 of every key, each key's in the low bytes of its lane."""
        out = bytearray(8 * n)
        for b in range(count):
            out[b::8] = data[first + b::length]
        return int.from_bytes(out, "little")

    h = (0x9747B28C ^ length) * ones
    for word in range(length >> 2):
        k = (lanes(4 * word, 4) * _M) & low32
        k ^= (k >> 24) & low32
        k = (k * _M) & low32
        h = ((h * _M) & low32) ^ k
    tail = length & 3
    if tail:
        h ^= lanes(length - tail, tail)
        h = (h * _M) & low32
    h ^= (h >> 13) & low32
    h = (h * _M) & low32
    h ^= (h >> 15) & low32
    return list(struct.unpack(f"<{n}Q", h.to_bytes(8 * n, "little")))


def partitions_for(keys: list[bytes | None], all_partitions: list[int], available: list[int]) -> list[int]:
    """`partition_for` of every key, in order: the partitions of one topic's messages at once.
    Keys of one length are hashed together when there are BULK_MIN of them or more (a batch's
    keys are mostly ids of one length): a fraction of the cost of one call per key."""
    out: list[int] = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        if key is None:
            out[i] = _random_partition(key, all_partitions, available)
        else:
            by_length.setdefault(len(key), []).append(i)
    count = len(all_partitions)
    for length, where in by_length.items():
        if len(where) < BULK_MIN:
            for i in where:
                out[i] = partition_for(keys[i], all_partitions, available)
            continue
        for i, digest in zip(where, murmur2_many([keys[i] for i in where], length)):
            out[i] = all_partitions[(digest & 0x7FFFFFFF) % count]
    return out
