"""`RecordStore.load` reads the records and the remembered ids in chunks (HSCAN, ZRANGE by
index), so no reply holds a large state at once. Against a real Redis: it gives exactly what
the one-transaction read it replaced gave (kept here as the reference) on generated states,
on a large one, on an empty one and on values that are not text; and a state whose version
moves while it reads is read again."""
from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings, strategies as st
from redis.asyncio import Redis

from deploy.embedded import start_redis
from shared.lease import Lease
from shared.store import RecordStore, StaleState
from shared.state import Changes, Commit, StoredRecords


@pytest.fixture(scope="module")
def redis_url(embedded_binaries):
    server = start_redis(None)
    yield server.url
    server.stop()


@pytest_asyncio.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def _s(value: bytes) -> str:
    return value.decode("utf-8")


async def reference_load(redis: Redis, store: RecordStore) -> dict:
    """What `load` was: everything in one MULTI, the records hash in one HGETALL."""
    pipe = redis.pipeline(transaction=True)
    pipe.get(store.version_key)
    pipe.hgetall(store.records_key)
    pipe.zrange(store.seen_key, 0, -1, withscores=True)
    pipe.hgetall(store.offsets_key)
    pipe.hgetall(store.quota_key)
    pipe.llen(store.outbox_key)
    version, records, seen, offsets, quota_raw, outbox = await pipe.execute()
    quota: dict[str, dict[str, int]] = {}
    for name, value in quota_raw.items():
        week, _, what = _s(name).partition("|")
        quota.setdefault(week, {})[what] = int(value)
    return {"version": int(version or 0), "records": {_s(k): v for k, v in records.items()},
            "seen": [(_s(m), float(s)) for m, s in seen], "offsets": {_s(k): int(v) for k, v in offsets.items()},
            "quota": quota, "outbox": int(outbox)}


async def loaded(store: RecordStore) -> dict:
    snap = await store.load()
    assert isinstance(snap.records, StoredRecords) and isinstance(snap.seen, dict)
    return {"version": snap.version, "records": dict(snap.records._raw), "seen": list(snap.seen.items()),
            "offsets": snap.offsets, "quota": snap.quota, "outbox": snap.outbox}


async def _write(redis: Redis, store: RecordStore, state: dict) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.set(store.version_key, state["version"])
    items = list(state["records"].items())
    for i in range(0, len(items), 5000):
        pipe.hset(store.records_key, mapping=dict(items[i:i + 5000]))
    seen = list(state["seen"].items())
    for i in range(0, len(seen), 5000):
        pipe.zadd(store.seen_key, dict(seen[i:i + 5000]))
    if state["offsets"]:
        pipe.hset(store.offsets_key, mapping=state["offsets"])
    for week, (live, cap) in state["quota"].items():
        pipe.hset(store.quota_key, mapping={f"{week}|live": live, f"{week}|cap": cap})
    if state["outbox"]:
        pipe.rpush(store.outbox_key, *state["outbox"])
    await pipe.execute()


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
state_strategy = st.fixed_dictionaries({
    "version": st.integers(0, 10**6),
    # binary-ish values: the store hands back the bytes Redis holds, whatever they are
    "records": st.dictionaries(text, st.one_of(st.binary(max_size=40), text.map(str.encode)), max_size=60),
    "seen": st.dictionaries(text, st.floats(-1e12, 1e12, allow_nan=False), max_size=60),
    "offsets": st.dictionaries(text, st.integers(0, 10**15), max_size=4),
    "quota": st.dictionaries(st.sampled_from(["2025-W40", "2025-W41"]),
                             st.tuples(st.integers(-3, 60), st.integers(0, 60)), max_size=2),
    "outbox": st.lists(st.binary(min_size=1, max_size=10), max_size=3),
    # past 512 fields the hash is a hash table, and HSCAN really walks it in chunks (the
    # fillers' keys are longer than the generated ones, so they never collide)
    "filler": st.sampled_from([0, 0, 600, 2000]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(state_strategy, st.integers(1, 25))
def test_a_chunked_load_gives_what_one_hgetall_gave(redis_url, state, chunk):
    async def run() -> tuple[dict, dict]:
        client = Redis.from_url(redis_url)
        try:
            await client.flushdb()
            store = RecordStore(client, "matching", load_chunk=chunk)
            await _write(client, store, state)
            for start in range(0, state["filler"], 500):
                await client.hset(store.records_key, mapping={
                    f"~filler-record-{i:06d}": b"\xff%d" % i for i in range(start, min(start + 500, state["filler"]))})
            return await loaded(store), await reference_load(client, store)
        finally:
            await client.aclose()

    new, old = asyncio.run(run())
    assert new == old
    assert len(new["records"]) == len(state["records"]) + state["filler"]


async def test_an_empty_state_loads_as_before(redis):
    store = RecordStore(redis, "enforcement")
    assert await loaded(store) == await reference_load(redis, store) == {
        "version": 0, "records": {}, "seen": [], "offsets": {}, "quota": {}, "outbox": 0}


async def test_a_large_state_loads_as_before_in_many_chunks(redis):
    # more records than a small hash's encoding holds, so HSCAN walks a real hash table
    # (its COUNT is a hint there: chunks differ in size, and a field may come twice)
    state = {
        "version": 41_234,
        "records": {f"person:{i:06d}": (b'{"a":"%d","pad":"%s"}' % (i, b"x" * (i % 300))) if i % 7
                    else bytes(range(256))[i % 200:] for i in range(30_000)},
        "seen": {f"e-{i}": float(i // 3) for i in range(12_345)},
        "offsets": {"internal.intake.accepted.v1:0": 10**9, "matching.instructions.v1:0": 7},
        "quota": {"2025-W40": (50, 50)},
        "outbox": [b'1|["x"]'],
    }
    store = RecordStore(redis, "enforcement", load_chunk=1000)
    await _write(redis, store, state)
    new, old = await loaded(store), await reference_load(redis, store)
    assert new == old
    assert len(new["records"]) == 30_000 and len(new["seen"]) == 12_345
    snap = await store.load()
    assert snap.records["person:000001"] == {"a": "1", "pad": "x"}


class _CommitsBetweenChunks:
    """A Redis client whose first `moves` HSCAN calls are each followed by a commit of another
    writer (as if a second writer, or a restored Redis, moved the state under the loader)."""

    def __init__(self, redis: Redis, writer: RecordStore, lease: Lease, moves: int):
        self._redis, self._writer, self._lease, self.moves = redis, writer, lease, moves
        self.hscans = 0

    def __getattr__(self, name):
        return getattr(self._redis, name)

    async def hscan(self, *args, **kwargs):
        got = await self._redis.hscan(*args, **kwargs)
        self.hscans += 1
        if self.moves:
            self.moves -= 1
            version = int(await self._redis.get(self._writer.version_key) or 0)
            changes = Changes()
            changes.put(f"case:moved-{self.hscans}", {"n": self.hscans})
            changes.delete("case:00000")
            await self._writer.commit(version, self._lease.value, changes, Commit())
        return got


async def _many_chunks(redis: Redis) -> tuple[RecordStore, Lease]:
    """1,000 records: a hash table, not the small encoding that HSCAN returns whole."""
    writer = RecordStore(redis, "matching")
    lease = Lease(redis, writer, "matching", ttl_ms=5000)
    assert await lease.try_acquire()
    changes = Changes()
    for i in range(1000):
        changes.put(f"case:{i:05d}", {"i": i})
    await writer.commit(0, lease.value, changes, Commit())
    return writer, lease


async def test_a_version_that_moves_while_the_records_are_read_is_read_again(redis):
    writer, lease = await _many_chunks(redis)
    proxy = _CommitsBetweenChunks(redis, writer, lease, moves=1)
    store = RecordStore(proxy, "matching", load_chunk=100)
    snap = await store.load()
    assert snap.version == 2
    assert "case:moved-1" in snap.records and "case:00000" not in snap.records and len(snap.records) == 1000
    assert dict(snap.records._raw) == (await reference_load(redis, store))["records"]
    assert proxy.hscans > 10  # the first read went on to its end, and the second read everything again


async def test_a_state_that_never_stops_moving_is_refused_as_stale(redis):
    writer, lease = await _many_chunks(redis)
    proxy = _CommitsBetweenChunks(redis, writer, lease, moves=10**6)
    store = RecordStore(proxy, "matching", load_chunk=100, load_attempts=3)
    with pytest.raises(StaleState) as stale:
        await store.load()
    assert stale.value.current == 1 + proxy.hscans


class _Taking:
    """A service's rebuild as the store sees it: what it was handed, chunk by chunk."""

    started: list["_Taking"] = []

    def __init__(self):
        self.chunks: list[dict] = []
        _Taking.started.append(self)

    def add(self, records) -> None:
        assert isinstance(records, StoredRecords)
        self.chunks.append({k: records[k] for k in records})

    def finish(self, snapshot) -> None:
        raise AssertionError("the runner finishes it, not the store")


async def test_a_restore_is_handed_the_records_chunk_by_chunk_and_the_snapshot_holds_none(redis):
    writer, _ = await _many_chunks(redis)
    store = RecordStore(redis, "matching", load_chunk=100)
    _Taking.started = []
    snap = await store.load(_Taking)
    [taking] = _Taking.started
    assert len(snap.records) == 0 and snap.version == 1
    assert len(taking.chunks) > 5 and all(len(c) < 1000 for c in taking.chunks)
    handed = {k: v for chunk in taking.chunks for k, v in chunk.items()}
    assert handed == {f"case:{i:05d}": {"i": i} for i in range(1000)}
    assert snap.seen == (await store.load()).seen and snap.offsets == (await store.load()).offsets


async def test_a_version_that_moves_while_restoring_starts_a_new_restore(redis):
    writer, lease = await _many_chunks(redis)
    proxy = _CommitsBetweenChunks(redis, writer, lease, moves=1)
    store = RecordStore(proxy, "matching", load_chunk=100)
    _Taking.started = []
    snap = await store.load(_Taking)
    first, second = _Taking.started  # the first read saw the state move: a new rebuild read it again
    assert snap.version == 2
    handed = {k: v for chunk in second.chunks for k, v in chunk.items()}
    assert "case:moved-1" in handed and "case:00000" not in handed and len(handed) == 1000
