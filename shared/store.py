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
from dataclasses import dataclass, field

from redis.asyncio import Redis

_COMMIT = """
local lease = redis.call('GET', KEYS[5])
if lease ~= ARGV[2] then
  return {'fenced', lease or ''}
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {'stale', tostring(current)}
end
local n_seen, n_off, n_up, n_del, n_quota, n_out = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local seen_score, seen_floor = ARGV[9], ARGV[10]
local seen_at = 11
local off_at = seen_at + 2 * n_seen
local up_at = off_at + 2 * n_off
local del_at = up_at + 2 * n_up
local quota_at = del_at + n_del
local out_at = quota_at + 4 * n_quota
-- the cap first: a refused batch writes nothing
for q = 0, n_quota - 1 do
  local week = ARGV[quota_at + 4 * q]
  local delta = tonumber(ARGV[quota_at + 4 * q + 1])
  local cap = tonumber(ARGV[quota_at + 4 * q + 2])
  local live = tonumber(redis.call('HGET', KEYS[7], week .. '|live') or '0') + delta
  if ARGV[quota_at + 4 * q + 3] == '1' and delta > 0 and live > cap then
    return {'cap_exceeded', week, tostring(live), tostring(cap)}
  end
end
for s = 0, n_seen - 1 do
  local score = ARGV[seen_at + 2 * s]
  if score == '' then score = seen_score end
  redis.call('ZADD', KEYS[3], score, ARGV[seen_at + 2 * s + 1])
end
if seen_floor ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. seen_floor) end
for o = 0, n_off - 1 do redis.call('HSET', KEYS[4], ARGV[off_at + 2 * o], ARGV[off_at + 2 * o + 1]) end
for u = 0, n_up - 1 do redis.call('HSET', KEYS[2], ARGV[up_at + 2 * u], ARGV[up_at + 2 * u + 1]) end
for d = 0, n_del - 1 do redis.call('HDEL', KEYS[2], ARGV[del_at + d]) end
for q = 0, n_quota - 1 do
  local week = ARGV[quota_at + 4 * q]
  redis.call('HINCRBY', KEYS[7], week .. '|live', tonumber(ARGV[quota_at + 4 * q + 1]))
  redis.call('HSET', KEYS[7], week .. '|cap', ARGV[quota_at + 4 * q + 2])
end
local v = redis.call('INCR', KEYS[1])
for m = 0, n_out - 1 do redis.call('RPUSH', KEYS[6], tostring(v) .. '|' .. ARGV[out_at + m]) end
return {'ok', tostring(v)}
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


# One encoder for every record: json.dumps with options builds a new one per call. Same bytes.
_RECORD_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


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
    upserts: dict[str, str] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    quota: dict[str, QuotaChange] = field(default_factory=dict)

    def put(self, key: str, record: dict) -> None:
        self.deletes.discard(key)
        self.upserts[key] = _RECORD_JSON(record)

    def delete(self, key: str) -> None:
        self.upserts.pop(key, None)
        self.deletes.add(key)

    def empty(self) -> bool:
        return not (self.seen or self.offsets or self.upserts or self.deletes or self.quota)


@dataclass
class Snapshot:
    version: int
    records: dict[str, dict]
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
    def __init__(self, redis: Redis, namespace: str):
        self.redis = redis
        self.ns = namespace
        tag = f"{{{namespace}}}"
        self.version_key = f"{tag}:version"
        self.records_key = f"{tag}:records"
        self.seen_key = f"{tag}:seen"
        self.offsets_key = f"{tag}:offsets"
        self.lease_key = f"{tag}:lease"
        self.outbox_key = f"{tag}:outbox"
        self.quota_key = f"{tag}:quota"
        self.fence_key = f"{tag}:fence"
        self._commit = redis.register_script(_COMMIT)
        self._trim = redis.register_script(_TRIM)

    async def load(self) -> Snapshot:
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.version_key)
        pipe.hgetall(self.records_key)
        pipe.zrange(self.seen_key, 0, -1, withscores=True)
        pipe.hgetall(self.offsets_key)
        pipe.hgetall(self.quota_key)
        pipe.llen(self.outbox_key)
        version, records, seen, offsets, quota_raw, outbox = await pipe.execute()
        quota: dict[str, dict[str, int]] = {}
        for name, value in quota_raw.items():
            week, _, what = _s(name).partition("|")
            quota.setdefault(week, {})[what] = int(value)
        return Snapshot(
            version=int(version or 0),
            records={_s(k): json.loads(v) for k, v in records.items()},
            seen={_s(member): float(score) for member, score in seen},
            offsets={_s(k): int(v) for k, v in offsets.items()},
            quota=quota,
            outbox=int(outbox),
        )

    async def commit(self, expected_version: int, lease: str, changes: Changes, extra: Commit) -> int:
        quota = list(changes.quota.values())
        keys = [self.version_key, self.records_key, self.seen_key, self.offsets_key, self.lease_key,
                self.outbox_key, self.quota_key]
        args: list[str | int | float | bytes] = [
            expected_version, lease, len(changes.seen), len(changes.offsets), len(changes.upserts),
            len(changes.deletes), len(quota), 1 if extra.outbox else 0, repr(extra.seen_score),
            "" if extra.seen_floor is None else repr(extra.seen_floor)]
        for event_id in changes.seen:
            at = changes.seen_at.get(event_id)
            args += ["" if at is None else repr(at), event_id]
        for k, v in changes.offsets.items():
            args += [k, v]
        for k, v in changes.upserts.items():
            args += [k, v]
        args += sorted(changes.deletes)
        for q in quota:
            args += [q.week, q.delta_live, q.cap, "1" if (q.check and extra.check_cap) else "0"]
        if extra.outbox:
            args.append(extra.outbox)
        result = await self._commit(keys=keys, args=args)
        status = _s(result[0])
        if status == "fenced":
            raise Fenced(_s(result[1]))
        if status == "stale":
            raise StaleState(int(_s(result[1])))
        if status == "cap_exceeded":
            raise CapExceeded(_s(result[1]), int(_s(result[2])), int(_s(result[3])))
        return int(_s(result[1]))

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
