"""A service's state in Redis: records, tracking, the weekly quota and the outbox.

Every change a batch makes is ONE Lua script (`commit`). In order, it checks that the writer
still holds the lease (the fencing check: a stale instance is refused), that the state version
is the one the writer read (a Redis flushed or restored under us is noticed), and that every
week the batch forms pairs in stays within its cap by Redis's own quota counters (the
authority). Only then does it write the records, the consumed offsets, the recent event ids
(the duplicate filter, pruned below a horizon), the quota counters and the batch's outbound
events into the outbox, and bump the version. A relay publishes the outbox afterwards, so
nothing reaches a topic that Redis did not commit.

Every key carries the service's hash tag (`{matching}:…`) so that one script's keys live in one
slot of a Redis Cluster.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from pydantic_core import to_json
from redis.asyncio import Redis

# The arguments: ARGV[1] "expected_version n_seen n_off n_up n_del n_quota", ARGV[2] the lease
# value, ARGV[3] the horizon ('' for none), ARGV[4] and ARGV[5] the batch's items (their lengths
# as 4-byte little-endian numbers, and their bytes end to end), ARGV[6] the outbox entry if there
# is one. The items, in order: (score, id) per seen id, (field, offset) per partition, (key, JSON)
# per record written, the keys deleted, (week, delta, cap, check) per quota change. Six arguments
# however large the batch: redis-py packs every argument in Python (about a microsecond each),
# the script cuts the items out of one string.
_COMMIT = """
local lease = redis.call('GET', KEYS[5])
if lease ~= ARGV[2] then
  return {'fenced', lease or ''}
end
local expected, n_seen, n_off, n_up, n_del, n_quota =
  string.match(ARGV[1], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(expected) then
  return {'stale', tostring(current)}
end
n_seen, n_off, n_up, n_del, n_quota = tonumber(n_seen), tonumber(n_off), tonumber(n_up), tonumber(n_del), tonumber(n_quota)
local A, n, at, lengths, blob = {}, 0, 1, ARGV[4], ARGV[5]
for k = 1, #lengths, 4 do
  local b1, b2, b3, b4 = string.byte(lengths, k, k + 3)
  local stop = at + b1 + 256 * b2 + 65536 * b3 + 16777216 * b4
  n = n + 1
  A[n] = string.sub(blob, at, stop - 1)
  at = stop
end
local seen_floor = ARGV[3]
local seen_at = 1
local off_at = seen_at + 2 * n_seen
local up_at = off_at + 2 * n_off
local del_at = up_at + 2 * n_up
local quota_at = del_at + n_del
-- the cap first: a refused batch writes nothing
local caps = {}
for q = 0, n_quota - 1 do
  local i = quota_at + 4 * q
  local week = A[i]
  local delta = tonumber(A[i + 1])
  local cap = tonumber(A[i + 2])
  local held = redis.call('HMGET', KEYS[7], week .. '|live', week .. '|cap')
  local live = tonumber(held[1] or '0') + delta
  if A[i + 3] == '1' and delta > 0 and live > cap then
    return {'cap_exceeded', week, tostring(live), tostring(cap)}
  end
  if caps[week] == nil then caps[week] = held[2] end
end
-- one call per kind of write, in slices that unpack can hand over (pairs stay together)
local function each(command, key, from, count)
  local last = from + count - 1
  for i = from, last, 1000 do
    redis.call(command, key, unpack(A, i, math.min(i + 999, last)))
  end
end
each('ZADD', KEYS[3], seen_at, 2 * n_seen)
if seen_floor ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. seen_floor) end
each('HSET', KEYS[4], off_at, 2 * n_off)
each('HSET', KEYS[2], up_at, 2 * n_up)
each('HDEL', KEYS[2], del_at, n_del)
for q = 0, n_quota - 1 do
  local i = quota_at + 4 * q
  local week, cap = A[i], A[i + 2]
  redis.call('HINCRBY', KEYS[7], week .. '|live', tonumber(A[i + 1]))
  if caps[week] ~= cap then
    redis.call('HSET', KEYS[7], week .. '|cap', cap)
    caps[week] = cap
  end
end
local v = redis.call('INCR', KEYS[1])
if ARGV[6] then redis.call('RPUSH', KEYS[6], tostring(v) .. '|' .. ARGV[6]) end
return v
"""

# Drop the outbox entries the relay published (up to and including version `upto`), only while
# the caller still holds the lease: a stale relay must not trim what the new writer has not sent.
_TRIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local upto = tonumber(ARGV[2])
local n = 0
while true do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if not head then break end
  local bar = string.find(head, '|', 1, true)
  if tonumber(string.sub(head, 1, bar - 1)) > upto then break end
  redis.call('LPOP', KEYS[2])
  n = n + 1
end
return n
"""


# How a record is written: compact JSON, keys sorted (a record's bytes do not depend on the order
# its dict was built in). orjson writes it; json.loads reads it back as it reads what json.dumps
# wrote before (the same values; text as UTF-8 rather than \u escapes).
_RECORD_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_RECORD_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)


def encode_record(record: dict) -> bytes:
    """The bytes stored for a record. Whatever orjson would write otherwise than json.dumps goes
    through json.dumps: what orjson refuses (integers over 64 bits, keys that are not text,
    subclasses, datetimes, dataclasses) and NaN or infinities (orjson writes them as null)."""
    try:
        out = orjson.dumps(record, option=_RECORD_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        return _RECORD_JSON(record).encode()
    if b"null" in out and _non_finite(record):
        return _RECORD_JSON(record).encode()
    return out


def _non_finite(record: dict) -> bool:
    """Whether a NaN or an infinity may hide behind a null orjson wrote (a false alarm costs time only)."""
    try:
        text = to_json(record, inf_nan_mode="constants")
    except Exception:  # noqa: BLE001 - unsure: json.dumps decides
        return True
    return b"NaN" in text or b"Infinity" in text


class StaleState(Exception):
    """Redis's version is not the one this process read: reload (or rebuild) and decide again."""

    def __init__(self, current: int):
        super().__init__(f"state version in Redis is {current}")
        self.current = current


class Fenced(Exception):
    """This instance no longer holds the service's lease: another writer may be active."""

    def __init__(self, holder: str):
        super().__init__("the lease is held by another instance" if holder else "the lease is gone")
        self.holder = holder


class CapExceeded(Exception):
    """The store refused a batch that would put a week's live pairs above its cap."""

    def __init__(self, week: str, live: int, cap: int):
        super().__init__(f"{week}: live {live} > cap {cap}")
        self.week, self.live, self.cap = week, live, cap


@dataclass
class QuotaChange:
    week: str
    delta_live: int
    cap: int
    check: bool  # True when the batch formed new pairs in that week


@dataclass
class Changes:
    seen: list[str] = field(default_factory=list)
    seen_at: dict[str, float] = field(default_factory=dict)  # an id's own event time, when known
    offsets: dict[str, int] = field(default_factory=dict)
    upserts: dict[str, bytes] = field(default_factory=dict)  # key -> the record's JSON
    deletes: set[str] = field(default_factory=set)
    quota: dict[str, QuotaChange] = field(default_factory=dict)

    def put(self, key: str, record: dict) -> None:
        self.deletes.discard(key)
        self.upserts[key] = encode_record(record)

    def delete(self, key: str) -> None:
        self.upserts.pop(key, None)
        self.deletes.add(key)

    def empty(self) -> bool:
        return not (self.seen or self.offsets or self.upserts or self.deletes or self.quota)


class StoredRecords(Mapping[str, dict]):
    """The records as Redis holds them (JSON bytes), each decoded when it is read. A restore
    reads each record once into the service's own compact state, so the whole decoded snapshot
    never exists at once: after the 2018-2025 history, enforcement's 386,655 records decoded
    in one go were most of a 533 MB peak on restart."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, bytes]):
        self._raw = raw

    def __getitem__(self, key: str) -> dict:
        return json.loads(self._raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def take(self, other: StoredRecords) -> None:
        """Add another chunk's records (as stored: none is decoded)."""
        self._raw.update(other._raw)


class Restoring(Protocol):
    """A service's state being rebuilt from its stored records, handed over a chunk at a time as
    they are read (so the whole stored state and the state built from it never both exist):
    in any order, and a record may come twice (HSCAN allows it), the same both times."""

    def add(self, records: Mapping[str, dict]) -> None:
        """Take these records (each decoded when it is read)."""

    def finish(self, snapshot: Snapshot) -> None:
        """Every record was handed over; `snapshot` holds the rest of the state (its records empty)."""


@dataclass
class Snapshot:
    version: int
    records: Mapping[str, dict]  # a StoredRecords when loaded from Redis
    seen: dict[str, float] | set[str]  # event id -> score (event-time seconds when it was seen)
    offsets: dict[str, int]
    quota: dict[str, dict[str, int]]  # week -> {"live": n, "cap": n}
    outbox: int = 0  # entries committed but not yet published


@dataclass
class Commit:
    """What one commit writes besides the changes: the score of seen ids without a time of
    their own (the batch's latest event time), the horizon below
    which ids are forgotten, the outbox payload (one JSON array per batch), and whether the
    cap is checked (never on a replay: the decisions were taken and published before)."""

    seen_score: float = 0.0
    seen_floor: float | None = None
    outbox: bytes | None = None
    check_cap: bool = True


class RecordStore:
    # fields per HSCAN (and ids per ZRANGE) while loading: replies of about 0.4 MB of
    # enforcement's records or 1.1 MB of matching's, instead of the whole hash in one
    LOAD_CHUNK = 2000
    LOAD_ATTEMPTS = 5  # reads of a state whose version moves meanwhile, before giving up

    def __init__(self, redis: Redis, namespace: str, *, load_chunk: int = LOAD_CHUNK,
                 load_attempts: int = LOAD_ATTEMPTS):
        self.redis = redis
        self.ns = namespace
        self.load_chunk = load_chunk
        self.load_attempts = load_attempts
        tag = f"{{{namespace}}}"
        self.version_key = f"{tag}:version"
        self.records_key = f"{tag}:records"
        self.seen_key = f"{tag}:seen"
        self.offsets_key = f"{tag}:offsets"
        self.lease_key = f"{tag}:lease"
        self.outbox_key = f"{tag}:outbox"
        self.quota_key = f"{tag}:quota"
        self.fence_key = f"{tag}:fence"
        self._keys = [k.encode() for k in (self.version_key, self.records_key, self.seen_key, self.offsets_key,
                                           self.lease_key, self.outbox_key, self.quota_key)]
        self._commit = redis.register_script(_COMMIT)
        self._trim = redis.register_script(_TRIM)

    async def load(self, restoring: Callable[[], Restoring] | None = None) -> Snapshot:
        """The state as one version. The records (and the remembered ids) are read in chunks,
        so no reply holds a large hash at once. redis-py's parser keeps every piece of a reply
        it reads until the reply ends, beside the values it makes of them: restarted after the
        2018-2025 history, enforcement peaked at 366 MB loading its 386,655 records in one
        HGETALL and at 258 MB in chunks (matching 344 -> 221 MB). One reply that large also
        took longer than the client's 5 s socket timeout to parse on a busy machine, and the
        restart retried it without end; a chunk takes milliseconds.

        Only commits change the state, each bumps the version and only the lease holder (the
        loader) may commit: a version that is the same after the last chunk as before the
        first means nothing moved in between. If it moved (Redis restored or flushed under
        us), read again.

        With `restoring`, each chunk of records goes to what it returns (a new one for every
        read of the state, which then starts over) as soon as it is read, and the snapshot's
        records are empty: a restart's peak is then the state built plus a chunk, not the whole
        stored state beside it (enforcement after the 2018-2025 history: 247 MB)."""
        for _ in range(self.load_attempts):
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(self.version_key)
            pipe.hgetall(self.offsets_key)
            pipe.hgetall(self.quota_key)
            pipe.llen(self.outbox_key)
            version, offsets, quota_raw, outbox = await pipe.execute()
            version = int(version or 0)
            records = await self._records(None if restoring is None else restoring().add)
            seen = await self._seen()
            if await self.current_version() != version:
                continue
            quota: dict[str, dict[str, int]] = {}
            for name, value in quota_raw.items():
                week, _, what = _s(name).partition("|")
                quota.setdefault(week, {})[what] = int(value)
            return Snapshot(
                version=version,
                records=StoredRecords(records),
                seen=seen,
                offsets={_s(k): int(v) for k, v in offsets.items()},
                quota=quota,
                outbox=int(outbox),
            )
        raise StaleState(await self.current_version())

    async def _records(self, to: Callable[[Mapping[str, dict]], None] | None) -> dict[str, bytes]:
        """The records hash by HSCAN, `load_chunk` fields a call (a field seen twice, which
        HSCAN allows, is the same field with the same value: the version did not move); each
        chunk handed `to` as it comes instead, when given."""
        raw: dict[str, bytes] = {}
        cursor = 0
        while True:
            cursor, chunk = await self.redis.hscan(self.records_key, cursor, count=self.load_chunk)
            if to is None:
                for k, v in chunk.items():
                    raw[_s(k)] = v
            else:
                to(StoredRecords({_s(k): v for k, v in chunk.items()}))
            if not cursor:
                return raw

    async def _seen(self) -> dict[str, float]:
        """The remembered ids, lowest score first, `load_chunk` a call."""
        seen: dict[str, float] = {}
        start = 0
        while True:
            chunk = await self.redis.zrange(self.seen_key, start, start + self.load_chunk - 1, withscores=True)
            for member, score in chunk:
                seen[_s(member)] = float(score)
            if len(chunk) < self.load_chunk:
                return seen
            start += self.load_chunk

    async def commit(self, expected_version: int, lease: str, changes: Changes, extra: Commit) -> int:
        quota = list(changes.quota.values())
        seen, seen_at, upserts = changes.seen, changes.seen_at, changes.upserts
        batch_score = repr(extra.seen_score).encode()
        items: list[bytes] = [b""] * (2 * len(seen))
        items[0::2] = [batch_score if (at := seen_at.get(event_id)) is None else repr(at).encode()
                       for event_id in seen]
        items[1::2] = [event_id.encode() for event_id in seen]
        for k, v in changes.offsets.items():
            items += (k.encode(), b"%d" % v)
        records: list[bytes] = [b""] * (2 * len(upserts))
        records[0::2] = [k.encode() for k in upserts]
        records[1::2] = [v if isinstance(v, bytes) else v.encode() for v in upserts.values()]
        items += records
        items += [k.encode() for k in sorted(changes.deletes)]
        for q in quota:
            items += (q.week.encode(), b"%d" % q.delta_live, b"%d" % q.cap,
                      b"1" if (q.check and extra.check_cap) else b"0")
        header = (f"{expected_version} {len(seen)} {len(changes.offsets)} {len(changes.upserts)} "
                  f"{len(changes.deletes)} {len(quota)}")
        args = [header.encode(), lease.encode(), b"" if extra.seen_floor is None else repr(extra.seen_floor).encode(),
                struct.pack(f"<{len(items)}I", *map(len, items)), b"".join(items)]
        if extra.outbox:
            args.append(extra.outbox)
        result = await self._commit(keys=self._keys, args=args)
        if isinstance(result, int):
            return result
        status = _s(result[0])
        if status == "fenced":
            raise Fenced(_s(result[1]))
        if status == "stale":
            raise StaleState(int(_s(result[1])))
        if status == "cap_exceeded":
            raise CapExceeded(_s(result[1]), int(_s(result[2])), int(_s(result[3])))
        raise RuntimeError(f"the commit script answered {status!r}")

    async def current_version(self) -> int:
        """The version Redis holds now (0 when it holds nothing)."""
        return int(await self.redis.get(self.version_key) or 0)

    # ---- the outbox, read and trimmed by the relay -----------------------------------------
    async def pending(self, limit: int = 64) -> list[tuple[int, bytes]]:
        """The oldest committed batches not yet published: (version, JSON array of messages)."""
        out = []
        for entry in await self.redis.lrange(self.outbox_key, 0, limit - 1):
            raw = entry if isinstance(entry, bytes) else entry.encode()
            version, _, payload = raw.partition(b"|")
            out.append((int(version), payload))
        return out

    async def trim(self, lease: str, upto: int) -> int:
        """Remove the published entries up to `upto`; -1 when this instance is fenced."""
        return int(await self._trim(keys=[self.lease_key, self.outbox_key], args=[lease, upto]))


def _s(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
