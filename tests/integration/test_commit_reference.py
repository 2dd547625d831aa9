"""The commit script against the one it replaced (kept here as the reference): on generated
states and batches (hypothesis), against a real Redis, the same answer (version, fenced,
stale, over the cap) and the same state afterwards, key for key."""
from __future__ import annotations

import asyncio

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings, strategies as st
from redis.asyncio import Redis

from deploy.embedded import start_redis
from shared.store import CapExceeded, Fenced, RecordStore, StaleState
from shared.state import Changes, Commit, QuotaChange

REFERENCE = """
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


def reference_args(expected_version: int, lease: str, changes: Changes, extra: Commit) -> list:
    quota = list(changes.quota.values())
    args = [expected_version, lease, len(changes.seen), len(changes.offsets), len(changes.upserts),
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
    return args


def reference_answer(result: list) -> tuple:
    status = [x.decode() for x in result]
    if status[0] == "ok":
        return ("ok", int(status[1]))
    if status[0] == "fenced":
        return ("fenced", status[1])
    if status[0] == "stale":
        return ("stale", int(status[1]))
    return ("cap_exceeded", status[1], int(status[2]), int(status[3]))


async def new_answer(url: str, version: int, lease: str, changes: Changes, extra: Commit) -> tuple:
    client = Redis.from_url(url)
    try:
        return ("ok", await RecordStore(client, "new").commit(version, lease, changes, extra))
    except Fenced as exc:
        return ("fenced", exc.holder)
    except StaleState as exc:
        return ("stale", exc.current)
    except CapExceeded as exc:
        return ("cap_exceeded", exc.week, exc.live, exc.cap)
    finally:
        await client.aclose()


def state(r: sync_redis.Redis, ns: str) -> dict:
    tag = f"{{{ns}}}"
    return {"version": r.get(f"{tag}:version"), "records": r.hgetall(f"{tag}:records"),
            "seen": r.zrange(f"{tag}:seen", 0, -1, withscores=True), "offsets": r.hgetall(f"{tag}:offsets"),
            "quota": r.hgetall(f"{tag}:quota"), "outbox": r.lrange(f"{tag}:outbox", 0, -1),
            "lease": r.get(f"{tag}:lease")}


@pytest.fixture(scope="module")
def redis_url(embedded_binaries):
    server = start_redis(None)
    yield server.url
    server.stop()


WEEKS = ["2025-W40", "2025-W41", "2025-W42"]
IDS = [f"e-{i}" for i in range(6)]
KEYS = [f"case:{c}" for c in "ABCDE"]
prior = st.fixed_dictionaries({
    "version": st.integers(0, 3),
    "records": st.dictionaries(st.sampled_from(KEYS), st.sampled_from(['{"a":1}', '{"b":"\\u00e9"}']), max_size=4),
    "seen": st.dictionaries(st.sampled_from(IDS), st.integers(0, 100).map(float), max_size=4),
    "quota": st.dictionaries(st.sampled_from(WEEKS), st.tuples(st.integers(0, 4), st.integers(0, 5)), max_size=3),
    "outbox": st.lists(st.sampled_from([b'1|["a"]', b'2|["b"]']), max_size=2),
})
batch = st.fixed_dictionaries({
    "version_off": st.sampled_from([0, 0, 0, 0, 0, 1, -1]),
    "lease_ok": st.sampled_from([True, True, True, True, False]),
    "seen": st.lists(st.sampled_from(IDS), max_size=5),
    "seen_at": st.dictionaries(st.sampled_from(IDS), st.floats(0, 200), max_size=3),
    "offsets": st.dictionaries(st.sampled_from(["in:0", "in:1", "other:3"]), st.integers(0, 10**12), max_size=3),
    "puts": st.dictionaries(st.sampled_from(KEYS), st.dictionaries(st.sampled_from("xyz"), st.integers(), max_size=2),
                            max_size=4),
    "deletes": st.sets(st.sampled_from(KEYS), max_size=3),
    # near the cap: the check's edge is where a difference would show
    "quota": st.lists(st.tuples(st.sampled_from(WEEKS), st.sampled_from([-1, 0, 1, 1, 2]), st.integers(0, 5),
                                st.sampled_from([True, True, False])), max_size=3),
    "seen_score": st.floats(0, 200),
    "seen_floor": st.one_of(st.none(), st.floats(0, 150)),
    "outbox": st.one_of(st.none(), st.just(b'[["t","k","{}",null]]')),
    "check_cap": st.sampled_from([True, True, True, False]),
})


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(prior, batch)
def test_the_commit_answers_and_writes_as_the_reference_script(redis_url, before, b):
    r = sync_redis.Redis.from_url(redis_url)
    try:
        r.flushdb()
        for ns in ("old", "new"):
            tag = f"{{{ns}}}"
            r.set(f"{tag}:version", before["version"])
            r.set(f"{tag}:lease", "1:matching:x")
            if before["records"]:
                r.hset(f"{tag}:records", mapping=before["records"])
            if before["seen"]:
                r.zadd(f"{tag}:seen", before["seen"])
            for week, (live, cap) in before["quota"].items():
                r.hset(f"{tag}:quota", mapping={f"{week}|live": live, f"{week}|cap": cap})
            if before["outbox"]:
                r.rpush(f"{tag}:outbox", *before["outbox"])
        changes = Changes()
        for event_id in b["seen"]:
            if event_id not in changes.seen:
                changes.seen.append(event_id)
        changes.seen_at = {k: v for k, v in b["seen_at"].items() if k in changes.seen}
        changes.offsets = dict(b["offsets"])
        for key, record in b["puts"].items():
            changes.put(key, record)
        for key in b["deletes"]:
            changes.delete(key)
        for week, delta, cap, check in b["quota"]:
            changes.quota[week] = QuotaChange(week, delta, cap, check)
        extra = Commit(seen_score=b["seen_score"], seen_floor=b["seen_floor"], outbox=b["outbox"],
                       check_cap=b["check_cap"])
        version = before["version"] + b["version_off"]
        lease = "1:matching:x" if b["lease_ok"] else "2:matching:y"

        keys = [f"{{old}}:{k}" for k in ("version", "records", "seen", "offsets", "lease", "outbox", "quota")]
        old = reference_answer(r.eval(REFERENCE, 7, *keys, *reference_args(version, lease, changes, extra)))
        new = asyncio.run(new_answer(redis_url, version, lease, changes, extra))
        assert new == old
        assert state(r, "new") == state(r, "old")
    finally:
        r.close()
