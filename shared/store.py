"""A service's state in Redis: records, the consumed-event tracking, and the weekly quota.

Every change a batch makes is ONE Lua script (`commit`): it checks the state version the
service read (so a stale writer, or a Redis that was flushed under us, is refused), checks the
weekly cap against Redis's own quota counters before writing anything, then writes the records,
the consumed event ids and the consumed offsets and bumps the version, atomically.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from redis.asyncio import Redis

_COMMIT = """
local expected = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= expected then
  return {'stale', tostring(current)}
end
local n_seen, n_off, n_up, n_del, n_quota = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local i = 7
local seen_at, off_at, up_at, del_at = i, i + n_seen, i + n_seen + 2 * n_off, i + n_seen + 2 * n_off + 2 * n_up
local quota_at = del_at + n_del
-- check the cap first: a Lua error does not roll back earlier writes
for q = 0, n_quota - 1 do
  local key = KEYS[5 + q]
  local delta = tonumber(ARGV[quota_at + 3 * q])
  local cap = tonumber(ARGV[quota_at + 3 * q + 1])
  local check = ARGV[quota_at + 3 * q + 2]
  local live = tonumber(redis.call('HGET', key, 'live') or '0') + delta
  if check == '1' and delta > 0 and live > cap then
    return {'cap_exceeded', key, tostring(live), tostring(cap)}
  end
end
for s = 0, n_seen - 1 do redis.call('SADD', KEYS[3], ARGV[seen_at + s]) end
for o = 0, n_off - 1 do redis.call('HSET', KEYS[4], ARGV[off_at + 2 * o], ARGV[off_at + 2 * o + 1]) end
for u = 0, n_up - 1 do redis.call('HSET', KEYS[2], ARGV[up_at + 2 * u], ARGV[up_at + 2 * u + 1]) end
for d = 0, n_del - 1 do redis.call('HDEL', KEYS[2], ARGV[del_at + d]) end
for q = 0, n_quota - 1 do
  local key = KEYS[5 + q]
  redis.call('HINCRBY', key, 'live', tonumber(ARGV[quota_at + 3 * q]))
  redis.call('HSET', key, 'cap', ARGV[quota_at + 3 * q + 1])
end
local v = redis.call('INCR', KEYS[1])
return {'ok', tostring(v)}
"""


class StaleState(Exception):
    """Redis's version is not the one this process read: reload (or rebuild) and retry."""

    def __init__(self, current: int):
        super().__init__(f"state version in Redis is {current}")
        self.current = current


class CapExceeded(Exception):
    """The store refused a batch that would put a week's live pairs above its cap."""


@dataclass
class QuotaChange:
    week: str
    delta_live: int
    cap: int
    check: bool  # True when the batch formed new pairs in that week


@dataclass
class Changes:
    seen: list[str] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    upserts: dict[str, str] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    quota: dict[str, QuotaChange] = field(default_factory=dict)

    def put(self, key: str, record: dict) -> None:
        self.deletes.discard(key)
        self.upserts[key] = json.dumps(record, separators=(",", ":"), sort_keys=True)

    def delete(self, key: str) -> None:
        self.upserts.pop(key, None)
        self.deletes.add(key)

    def empty(self) -> bool:
        return not (self.seen or self.offsets or self.upserts or self.deletes or self.quota)


@dataclass
class Snapshot:
    version: int
    records: dict[str, dict]
    seen: set[str]
    offsets: dict[str, int]
    quota: dict[str, dict[str, int]]


class RecordStore:
    def __init__(self, redis: Redis, namespace: str):
        self.redis = redis
        self.ns = namespace
        self.version_key = f"{namespace}:version"
        self.records_key = f"{namespace}:records"
        self.seen_key = f"{namespace}:seen"
        self.offsets_key = f"{namespace}:offsets"
        self._commit = redis.register_script(_COMMIT)

    def quota_key(self, week: str) -> str:
        return f"{self.ns}:quota:{week}"

    async def load(self) -> Snapshot:
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.version_key)
        pipe.hgetall(self.records_key)
        pipe.smembers(self.seen_key)
        pipe.hgetall(self.offsets_key)
        version, records, seen, offsets = await pipe.execute()
        quota = {}
        async for key in self.redis.scan_iter(match=f"{self.ns}:quota:*", count=500):
            k = key.decode() if isinstance(key, bytes) else key
            values = await self.redis.hgetall(k)
            quota[k.rsplit(":", 1)[1]] = {_s(f): int(v) for f, v in values.items()}
        return Snapshot(
            version=int(version or 0),
            records={_s(k): json.loads(v) for k, v in records.items()},
            seen={_s(s) for s in seen},
            offsets={_s(k): int(v) for k, v in offsets.items()},
            quota=quota,
        )

    async def commit(self, expected_version: int, changes: Changes) -> int:
        quota = list(changes.quota.values())
        keys = [self.version_key, self.records_key, self.seen_key, self.offsets_key]
        keys += [self.quota_key(q.week) for q in quota]
        args: list[str | int] = [expected_version, len(changes.seen), len(changes.offsets),
                                 len(changes.upserts), len(changes.deletes), len(quota)]
        args += changes.seen
        for k, v in changes.offsets.items():
            args += [k, v]
        for k, v in changes.upserts.items():
            args += [k, v]
        args += sorted(changes.deletes)
        for q in quota:
            args += [q.delta_live, q.cap, "1" if q.check else "0"]
        result = await self._commit(keys=keys, args=args)
        status = _s(result[0])
        if status == "stale":
            raise StaleState(int(_s(result[1])))
        if status == "cap_exceeded":
            raise CapExceeded(f"{_s(result[1])}: live {_s(result[2])} > cap {_s(result[3])}")
        return int(_s(result[1]))


def _s(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
