"""The commit script and the lease against a real Redis: fencing, version, quota, outbox, horizon."""
from __future__ import annotations

import json

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from deploy.embedded import start_redis
from shared.lease import Lease
from shared.store import CapExceeded, Fenced, RecordStore, StaleState
from shared.state import Changes, Commit, QuotaChange


@pytest.fixture(scope="module")
def redis_server(embedded_binaries):
    server = start_redis(None)
    yield server
    server.stop()


@pytest_asyncio.fixture
async def redis(redis_server):
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


async def _writer(redis: Redis, instance: str = "matching") -> tuple[RecordStore, Lease]:
    store = RecordStore(redis, "matching")
    lease = Lease(redis, store, instance, ttl_ms=5000)
    assert await lease.try_acquire()
    return store, lease


def _changes(key: str = "case:A", **quota: tuple[int, int, bool]) -> Changes:
    c = Changes()
    c.put(key, {"status": "paired"})
    c.offsets["in:0"] = 7
    c.seen.append("e-1")
    for week, (delta, cap, check) in quota.items():
        c.quota[week] = QuotaChange(week.replace("_", "-"), delta, cap, check)
    return c


async def test_a_commit_writes_records_offsets_ids_quota_and_outbox_at_once(redis):
    store, lease = await _writer(redis)
    out = json.dumps([["ops.audit.v1", "A", "{}"]]).encode()
    version = await store.commit(0, lease.value, _changes(**{"2025_W40": (1, 50, True)}),
                                 Commit(seen_score=100.0, outbox=out))
    snap = await store.load()
    assert version == 1 and snap.version == 1
    assert snap.records == {"case:A": {"status": "paired"}} and snap.offsets == {"in:0": 7}
    assert snap.seen == {"e-1": 100.0} and snap.quota == {"2025-W40": {"live": 1, "cap": 50}}
    assert await store.pending() == [(1, out)] and snap.outbox == 1


async def test_a_writer_without_the_lease_is_fenced_and_writes_nothing(redis):
    store, lease = await _writer(redis)
    with pytest.raises(Fenced):
        await store.commit(0, "1:someone-else:x", _changes(), Commit(outbox=b"[]"))
    stale_value = lease.value
    await redis.delete(store.lease_key)  # the lease expired ...
    other = Lease(redis, store, "matching-2", ttl_ms=5000)
    assert await other.try_acquire()  # ... and the standby took it, with a higher token
    assert other.token > lease.token
    with pytest.raises(Fenced) as refused:
        await store.commit(0, stale_value, _changes(), Commit(outbox=b"[]"))
    assert refused.value.holder == other.value
    snap = await store.load()
    assert snap.version == 0 and snap.records == {} and snap.outbox == 0
    assert await lease.renew() == "taken" and await other.renew() == "held"


async def test_a_stale_version_is_refused_and_writes_nothing(redis):
    store, lease = await _writer(redis)
    await store.commit(0, lease.value, _changes(), Commit())
    with pytest.raises(StaleState) as stale:
        await store.commit(0, lease.value, _changes("case:B"), Commit(outbox=b"[]"))
    assert stale.value.current == 1
    snap = await store.load()
    assert set(snap.records) == {"case:A"} and snap.outbox == 0


async def test_the_quota_counters_refuse_a_pair_over_the_cap_and_the_batch_writes_nothing(redis):
    store, lease = await _writer(redis)
    v = await store.commit(0, lease.value, _changes(**{"2025_W40": (2, 2, True)}), Commit())
    with pytest.raises(CapExceeded) as refused:
        await store.commit(v, lease.value, _changes("case:B", **{"2025_W40": (1, 2, True)}), Commit(outbox=b"[]"))
    assert (refused.value.week, refused.value.live, refused.value.cap) == ("2025-W40", 3, 2)
    snap = await store.load()
    assert snap.version == v and "case:B" not in snap.records and snap.quota["2025-W40"]["live"] == 2
    # a broken pair frees a place; lowering the cap below the live pairs breaks none
    v = await store.commit(v, lease.value, _changes("case:C", **{"2025_W40": (-1, 1, False)}), Commit())
    assert (await store.load()).quota["2025-W40"] == {"live": 1, "cap": 1}
    # a replay re-derives decisions taken before: it is never refused
    v = await store.commit(v, lease.value, _changes("case:D", **{"2025_W40": (1, 1, True)}), Commit(check_cap=False))
    assert (await store.load()).quota["2025-W40"]["live"] == 2


async def test_the_relay_trims_only_what_it_published_and_only_while_it_holds_the_lease(redis):
    store, lease = await _writer(redis)
    v1 = await store.commit(0, lease.value, _changes(), Commit(outbox=b'["first"]'))
    v2 = await store.commit(v1, lease.value, _changes("case:B"), Commit(outbox=b'["second"]'))
    assert [v for v, _ in await store.pending()] == [v1, v2]
    assert await store.trim("9:stale:x", v2) == -1
    assert await store.trim(lease.value, v1) == 1
    assert await store.pending() == [(v2, b'["second"]')]


async def test_the_duplicate_filter_forgets_ids_below_its_horizon(redis):
    store, lease = await _writer(redis)
    old = _changes()
    await store.commit(0, lease.value, old, Commit(seen_score=10.0))
    new = _changes("case:B")
    new.seen = ["e-2"]
    await store.commit(1, lease.value, new, Commit(seen_score=500.0, seen_floor=400.0))
    assert (await store.load()).seen == {"e-2": 500.0}


async def test_a_vanished_lease_is_gone_not_taken_and_can_be_acquired_again(redis):
    store, lease = await _writer(redis)
    before = lease.value
    await redis.flushdb()
    assert await lease.renew() == "gone"
    assert await lease.try_acquire() and lease.value != before
    with pytest.raises(Fenced):  # the old holding can never write again
        await store.commit(0, before, _changes(), Commit())
    await lease.release()
    assert await redis.get(store.lease_key) is None


async def test_an_event_id_is_remembered_by_its_own_event_time(redis):
    store, lease = await _writer(redis)
    batch = _changes()
    batch.seen = ["late", "recent", "untimed"]
    batch.seen_at = {"late": 100.0, "recent": 900.0}
    await store.commit(0, lease.value, batch, Commit(seen_score=1000.0, seen_floor=500.0))
    # a late event below the horizon is not kept; the others keep their own time, or the batch's
    assert (await store.load()).seen == {"recent": 900.0, "untimed": 1000.0}


async def test_a_large_batch_writes_every_id_record_offset_and_delete(redis):
    # more items of each kind than the script hands Redis in one call
    store, lease = await _writer(redis)
    first = Changes()
    for i in range(1500):
        first.put(f"case:{i}", {"n": i})
    v = await store.commit(0, lease.value, first, Commit())
    big = Changes()
    big.seen = [f"e-{i}" for i in range(2500)]
    big.seen_at = {f"e-{i}": float(i) for i in range(0, 2500, 2)}
    for i in range(1200):
        big.put(f"case:{i + 1000}", {"n": -i, "name": "Zoë 😀"})
    for i in range(1100):
        big.delete(f"case:{i}")
    big.offsets = {f"in:{p}": p * 10 for p in range(1001)}
    big.quota = {"2025-W40": QuotaChange("2025-W40", 3, 50, True), "2025-W41": QuotaChange("2025-W41", 0, 9, False)}
    v = await store.commit(v, lease.value, big, Commit(seen_score=5000.0, outbox=b'["x"]'))
    snap = await store.load()
    assert snap.version == v == 2
    assert snap.seen == {f"e-{i}": float(i) if i % 2 == 0 else 5000.0 for i in range(2500)}
    # the deletes took back the batch's own puts of case:1000-1099; case:1100-1499 were overwritten
    assert snap.records == {f"case:{k}": {"n": 1000 - k, "name": "Zoë 😀"} for k in range(1100, 2200)}
    assert snap.offsets == {f"in:{p}": p * 10 for p in range(1001)}
    assert snap.quota == {"2025-W40": {"live": 3, "cap": 50}, "2025-W41": {"live": 0, "cap": 9}}
    assert await store.pending() == [(2, b'["x"]')]


async def test_a_cap_is_written_when_it_changes_and_kept_when_it_does_not(redis):
    store, lease = await _writer(redis)
    v = await store.commit(0, lease.value, _changes(**{"2025_W40": (1, 50, True)}), Commit())
    v = await store.commit(v, lease.value, _changes(**{"2025_W40": (1, 50, True)}), Commit())
    assert (await store.load()).quota["2025-W40"] == {"live": 2, "cap": 50}
    v = await store.commit(v, lease.value, _changes(**{"2025_W40": (0, 40, False)}), Commit())
    assert (await store.load()).quota["2025-W40"] == {"live": 2, "cap": 40}


async def test_records_written_by_the_earlier_encoder_load_as_the_new_ones(redis):
    store, lease = await _writer(redis)
    record = {"name": "Zoë 😀", "ids": ["a", "b"], "n": 3, "none": None, "nested": {"b": 1, "a": [1.5]}}
    old = json.dumps(record, separators=(",", ":"), sort_keys=True)  # \u escapes, as stored until now
    await redis.hset(store.records_key, "case:old", old)
    c = Changes()
    c.put("case:new", record)
    await store.commit(0, lease.value, c, Commit())
    assert old.isascii() and c.upserts["case:new"] != old.encode()
    snap = await store.load()
    assert snap.records["case:old"] == snap.records["case:new"] == record


async def test_a_loaded_snapshot_decodes_each_record_only_when_it_is_read(redis):
    """A restore must not hold the whole decoded state twice: the snapshot keeps the bytes."""
    from shared.state import StoredRecords

    store, lease = await _writer(redis)
    changes = Changes()
    for k in range(50):
        changes.put(f"case:{k}", {"n": k})
    await store.commit(0, lease.value, changes, Commit(seen_score=1.0))
    snap = await store.load()
    assert isinstance(snap.records, StoredRecords)
    assert all(isinstance(v, bytes) for v in snap.records._raw.values())
    assert len(snap.records) == 50 and "case:7" in snap.records and snap.records.get("case:99") is None
    assert snap.records["case:7"] == {"n": 7}
    assert dict(snap.records.items()) == {f"case:{k}": {"n": k} for k in range(50)}
