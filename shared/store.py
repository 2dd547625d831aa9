"""A service's state in Redis: records, tracking, the weekly quota and the outbox.

Every change a batch makes is ONE Lua script (`commit`, in shared/store_scripts.py). In order,
it checks that the writer still holds the lease (the fencing check: a stale instance is
refused), that the state version is the one the writer read (a Redis flushed or restored under
us is noticed), and that every week the batch forms pairs in stays within its cap by Redis's own
quota counters (the authority). Only then does it write the records, the consumed offsets, the
recent event ids (the duplicate filter, pruned below a horizon), the quota counters and the
batch's outbound events into the outbox, and bump the version. A relay publishes the outbox
afterwards, so nothing reaches a topic that Redis did not commit.

Every key carries the service's hash tag (`{matching}:…`) so that one script's keys live in one
slot of a Redis Cluster.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from redis.asyncio import Redis

from shared.state import Changes, Commit, Restoring, Snapshot, StoredRecords
from shared.store_scripts import COMMIT, TRIM

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
        self._commit = redis.register_script(COMMIT)
        self._trim = redis.register_script(TRIM)

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
