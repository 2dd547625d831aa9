"""The bench's instruments: the bare relay (the ceiling), group progress, memory, the quota
script against INCR, and the latency watcher. None of them asserts anything."""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from deploy.embedded import cancel, ensure_topics
from deploy.sim.kafka import GROUP_INPUTS, _probe
from services.ops.health import groups_for
from shared.store import RecordStore
from shared.state import Changes, Commit, QuotaChange
from shared.topics import TopicSpec

CEILING_IN, CEILING_OUT = "bench.ceiling.in", "bench.ceiling.out"


# --------------------------------------------------------------------------- the ceiling

async def ceiling(bootstrap: str, values: list[bytes], partitions: int = 6) -> dict:
    """A bare aiokafka relay on the same broker: consume -> JSON decode/encode -> produce,
    offsets committed once per fetched batch after its sends are acknowledged. Messages per
    second from the first record fetched to the last one acknowledged downstream."""
    await ensure_topics(bootstrap, [TopicSpec(CEILING_IN, partitions), TopicSpec(CEILING_OUT, partitions)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(CEILING_IN, v, key=str(i).encode()) for i, v in enumerate(values)]
        await asyncio.gather(*futures)
        consumer = AIOKafkaConsumer(CEILING_IN, bootstrap_servers=bootstrap, group_id="bench-ceiling",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=50, max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            done, t0 = 0, None
            while done < len(values):
                got = await consumer.getmany(timeout_ms=1000, max_records=2000)
                if not got:
                    continue
                t0 = t0 or time.monotonic()
                sends = []
                for tp, recs in got.items():
                    for r in recs:
                        sends.append(await producer.send(CEILING_OUT, json.dumps(json.loads(r.value)).encode(),
                                                         key=r.key))
                await asyncio.gather(*sends)
                await consumer.commit()
                done += len(sends)
            seconds = time.monotonic() - t0
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return {"ceiling_rate": round(len(values) / seconds, 1), "ceiling_messages": len(values),
            "ceiling_message_bytes": round(sum(map(len, values)) / len(values))}


# --------------------------------------------------------------------------- group progress

async def _tps(bootstrap: str, inputs: tuple[str, ...]) -> list[TopicPartition]:
    probe = await _probe(bootstrap)
    return [tp for t in inputs for tp in await probe.tps(t)]


def groups_of(stack) -> dict[str, tuple[str, ...]]:
    """Every consumer group of an embedded stack and its inputs: the services', and one per shard
    of enforcement past the first (shared/shards.py)."""
    return groups_for(stack.shard_env())


async def alone_rate(bootstrap: str, group: str, limit: float, since: float, interval: float = 0.1) -> dict:
    """A group that has just started on a full input: records per second from its first
    commit to its last (its join and first fetch are left out); when it took everything in
    one commit, from `since` (its instance became active) instead."""
    barrier = Settled(bootstrap, {group: GROUP_INPUTS[group]})
    await barrier.start()
    try:
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                lag = (await barrier.lagging()).get(group, 0)
            except TimeoutError:
                await asyncio.sleep(interval)
                continue
            now = time.monotonic()
            end = sum(barrier.ends.values())
            committed = end - lag
            if committed and first is None:
                first = (now, committed)
            if end and not lag:
                if first is None or committed == first[1]:
                    return {"records": end, "rate": round(end / max(now - since, 1e-3), 1)}
                return {"records": end, "rate": round((committed - first[1]) / (now - first[0]), 1)}
            await asyncio.sleep(interval)
    finally:
        await barrier.stop()
    raise TimeoutError(f"{group} did not consume its input within {limit:.0f}s")


# --------------------------------------------------------------------------- memory

def rss_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the kernel's own peak) of a process, in MB; {} once it is gone."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        return {}
    return out


@dataclass
class MemorySampler:
    """Samples each service's RSS every `every` seconds; the peak is the larger of what it saw
    and the kernel's high-water mark."""

    pids: dict[str, int]
    every: float = 0.5
    peak: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task | None = None

    def sample(self) -> dict[str, float]:
        now = {}
        for name, pid in self.pids.items():
            got = rss_mb(pid)
            if got:
                now[name] = got["VmRSS"]
                self.peak[name] = max(self.peak.get(name, 0.0), got["VmRSS"], got.get("VmHWM", 0.0))
        return now

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task)
        self.sample()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(pids: dict[str, int], seconds: float = 3.0) -> dict[str, float]:
    """Percent of one core each process uses while nothing is sent (polling, heartbeats, lease)."""
    before = {n: cpu_seconds(p) for n, p in pids.items()}
    await asyncio.sleep(seconds)
    return {n: round(100 * (cpu_seconds(p) - before[n]) / seconds, 1) for n, p in pids.items()}


def service_pids(stack) -> dict[str, int]:
    return {name: svc.process.pid for name, svc in stack.services.items() if svc.alive}


# --------------------------------------------------------------------------- the quota script

async def quota_vs_incr(redis_url: str, seconds: float = 3.0) -> dict:
    """The services' commit script carrying one quota change (fencing check, version check, cap
    check, HINCRBY, version bump) against a plain INCR: one at a time each, same client, same
    Redis, same run. Under its own namespace, so no service's keys are touched."""
    redis = Redis.from_url(redis_url)
    try:
        store = RecordStore(redis, "bench-quota")
        lease = "1:bench:quota"
        await redis.delete(store.version_key, store.quota_key, store.outbox_key, "bench-quota:incr")
        await redis.set(store.lease_key, lease)
        version, n, t0 = 0, 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            changes = Changes(quota={"2025-W40": QuotaChange("2025-W40", 1, 10**9, True)})
            version = await store.commit(version, lease, changes, Commit(check_cap=True))
            n += 1
        quota_ops = n / (time.monotonic() - t0)
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            await redis.incr("bench-quota:incr")
            n += 1
        incr_ops = n / (time.monotonic() - t0)
        await redis.delete(store.version_key, store.quota_key, store.lease_key, "bench-quota:incr")
    finally:
        await redis.aclose()
    return {"quota_ops": round(quota_ops, 1), "incr_ops": round(incr_ops, 1),
            "quota_ratio": round(quota_ops / incr_ops, 3)}


async def redis_state(redis_url: str, services) -> dict:
    """What the services' state takes in Redis: used memory, and records and remembered event
    ids per service."""
    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("memory")
        records = {s: await redis.hlen(f"{{{s}}}:records") for s in services}
        seen = {s: await redis.zcard(f"{{{s}}}:seen") for s in services}
    finally:
        await redis.aclose()
    return {"redis_used_mb": round(info["used_memory"] / 2**20, 1), "redis_records": records, "redis_seen_ids": seen}


# --------------------------------------------------------------------------- latency

class AuditWatcher:
    """Reads ops.audit.v1 from its end as it is now and notes, by subject, when the first
    Decision (any) and the first `paired` Decision became visible."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         fetch_max_wait_ms=5, auto_offset_reset="latest")
        self.topic = topic
        self.first: dict[str, float] = {}
        self.paired: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            await self.consumer.topics()
            parts = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            got = await self.consumer.getmany(timeout_ms=100, max_records=2000)
            now = time.monotonic()
            for recs in got.values():
                for r in recs:
                    d = json.loads(r.value)
                    subject = d.get("subject_ref")
                    self.first.setdefault(subject, now)
                    if d.get("decision") == "paired":
                        self.paired.setdefault(subject, now)

    async def stop(self) -> None:
        await cancel(self._task)
        await self.consumer.stop()


def percentiles(samples_ms: list[float]) -> dict[str, float | None]:
    if not samples_ms:
        return {"p50": None, "p95": None, "p99": None}
    s = sorted(samples_ms)

    def p(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))], 1)

    return {"p50": p(0.50), "p95": p(0.95), "p99": p(0.99)}


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --------------------------------------------------------------------------- the barrier

class Settled:
    """Whether every service group has consumed (committed) everything on its inputs.

    Like deploy.sim.kafka.settle, but the end of each partition comes from the high watermark
    of a fetch issued at the group's committed offset (every fetch response carries it), so
    it needs neither Tansu's ListOffsets (which answers with the last batch's base offset)
    nor a read of the last batch of a partition holding a quarter of a million records, which
    a busy Tansu can take more than ten seconds to answer."""

    def __init__(self, bootstrap: str, groups: dict[str, tuple[str, ...]] = GROUP_INPUTS):
        self.bootstrap = bootstrap
        self.inputs = dict(groups)  # group -> its input topics
        self.groups = tuple(groups)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         fetch_max_wait_ms=5, max_partition_fetch_bytes=64 * 1024)
        self._tps: dict[str, list[TopicPartition]] = {}
        self.ends: dict[TopicPartition, int] = {}  # as of the last check

    async def start(self) -> None:
        await self.consumer.start()
        for g in self.groups:
            self._tps[g] = await _tps(self.bootstrap, self.inputs[g])
        self.consumer.assign(sorted({tp for tps in self._tps.values() for tp in tps}))

    async def stop(self) -> None:
        await self.consumer.stop()

    async def lagging(self, timeout: float = 30.0) -> dict[str, int]:
        """Records each group still has to consume ({} when settled)."""
        probe = await _probe(self.bootstrap)
        committed: dict[TopicPartition, dict[str, int]] = {}
        for g in self.groups:
            got = await probe.admin.list_consumer_group_offsets(g, partitions=self._tps[g])
            for tp in self._tps[g]:
                om = got.get(tp)
                committed.setdefault(tp, {})[g] = om.offset if om is not None and om.offset >= 0 else 0
        c = self.consumer
        since = int(time.time() * 1000)
        for tp, by_group in committed.items():
            c.seek(tp, min(by_group.values()))
        deadline = time.monotonic() + timeout
        fresh: set[TopicPartition] = set()
        while len(fresh) < len(committed):
            if time.monotonic() > deadline:
                raise TimeoutError("the broker did not answer the settle fetch in time")
            await c.getmany(timeout_ms=100, max_records=1)
            fresh = {tp for tp in committed if (c.last_poll_timestamp(tp) or 0) >= since}
        lag: dict[str, int] = {}
        self.ends = {tp: c.highwater(tp) or 0 for tp in committed}
        for tp, by_group in committed.items():
            hw = self.ends[tp]
            for g, done in by_group.items():
                if hw > done:
                    lag[g] = lag.get(g, 0) + hw - done
        return lag

    def records(self, topic: str) -> int:
        return sum(n for tp, n in self.ends.items() if tp.topic == topic)

    async def wait(self, label: str, limit: float, interval: float = 0.1) -> float:
        """Until settled twice in a row; a progress line every 30 s."""
        t0 = time.monotonic()
        said = t0
        in_a_row = 0
        while in_a_row < 2:
            try:
                lag = await self.lagging()
            except TimeoutError:
                lag = {"(broker busy)": -1}
            in_a_row = 0 if lag else in_a_row + 1
            now = time.monotonic()
            if now - t0 > limit:
                raise TimeoutError(f"{label}: not settled after {limit:.0f}s: {lag}")
            if now - said > 30:
                print(f"  {label}: still settling after {now - t0:.0f}s ({lag})", flush=True)
                said = now
            if in_a_row < 2:
                await asyncio.sleep(interval)
        return time.monotonic() - t0


# ------------------------------------------------------------------------- batches

def _metric_sum(text: str, name: str) -> float:
    """The sum of a Prometheus text exposition's samples of `name` (all its labels)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def batch_counts(metrics_urls: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each instance's committed batches and the events it took for the first time (its
    duplicate filter's count: transfer's particulars are not in it), from its /metrics: the
    average batch is what the per-batch costs (a commit, a publish, a fetch) are spread over."""
    def scrape(url: str) -> str:
        from urllib.request import urlopen
        with urlopen(url, timeout=5) as reply:
            return reply.read().decode()

    out = {}
    for name, url in metrics_urls.items():
        try:
            text = await asyncio.to_thread(scrape, url)
        except OSError:
            continue
        batches = _metric_sum(text, "oioo_commit_seconds_count")
        events = _metric_sum(text, "oioo_events_total")
        out[name] = {"batches": batches, "first_time_events": events,
                     "first_time_events_per_batch": round(events / batches, 1) if batches else None}
    return out
