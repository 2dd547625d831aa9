"""The runtime under the faults real deployments see: poison records, crashes at the worst
moments, a standby taking over, Redis behind Kafka, Redis stalled, SIGTERM."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request

import pytest
from redis.asyncio import Redis

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from deploy.embedded import free_port, service_env, start_service
from shared import topics as T
from shared.store import RecordStore
from tests.support import factory as f
from tests.support.factory import HOUR, MINUTE, T0

pytestmark = pytest.mark.integration


def _pids(house) -> dict[str, int]:
    return {name: svc.process.pid for name, svc in house.stack.services.items() if svc.alive}


async def _spawn(house, name: str, instance: str | None = None, **extra: str):
    """Another process of `name` on the same broker and Redis (an instance, or a faulty one)."""
    stack = house.stack
    instance = instance or name
    env = service_env(stack.bootstrap, stack.redis_url, stack.run_dir / "ready" / instance, stack.keys_file)
    env.update({"SERVICE_INSTANCE": instance, "OIOO_FAULTS": "", **extra})
    return start_service(name, env, stack.log_path(instance)).process


async def _exited(proc, timeout: float = 60.0) -> int:
    for _ in range(int(timeout * 10)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.1)
    raise AssertionError(f"pid {proc.pid} still running after {timeout}s")


async def _pair(client, n: int, at) -> None:
    await client.publish(T.BORDER_ARRIVALS, f.arrival(f"A{n}", at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{n}", at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{n}", at))


async def test_a_poison_record_on_an_internal_topic_is_dead_lettered_and_the_rest_goes_on(house, client, observer):
    before = _pids(house)
    # records that passed intake but make a service raise: a bug, not an outage
    await client.publish(T.INTAKE_ACCEPTED, raw=b'{"source_topic": "x", "event": {"family_name": "Doe"}}',
                         key="bad", sign=False)
    await client.publish(T.MATCHING_INSTRUCTIONS, raw=b'{"kind": "RequestReturn", "family_name": "Doe"}',
                         key="bad", sign=False)
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    letters = await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", error_code="processing_error", count=3)
    by_source = sorted((d["source_topic"], d["error_detail"].split()[0]) for d in letters)
    # the instruction is read by both its consumers: enforcement and transfer each dead-letter it
    assert by_source == [(T.INTAKE_ACCEPTED, "enforcement"), (T.MATCHING_INSTRUCTIONS, "enforcement"),
                         (T.MATCHING_INSTRUCTIONS, "transfer")]
    assert all("ValidationError" in d["error_detail"] and "Doe" not in d["error_detail"] for d in letters)
    alerts = await observer.wait_for(T.OPS_ALERTS, "Alert", kind="dead_letter", severity="critical", count=3)
    assert len(alerts) == 3
    assert _pids(house) == before  # nothing restarted


async def test_a_crash_between_the_redis_commit_and_the_publish_publishes_the_same_events_on_restart(
        house, client, observer):
    await house.stop_service("intake")
    faulty = await _spawn(house, "intake", OIOO_FAULTS="after_commit=1")
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0))
    assert await _exited(faulty) == -signal.SIGKILL
    redis = Redis.from_url(house.redis_url)
    try:
        assert len(await RecordStore(redis, "intake").pending()) == 1  # committed, not published
    finally:
        await redis.aclose()
    assert observer.events(T.OPS_AUDIT, subject_ref="A1") == []
    await house.start_service("intake")
    first = await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="A1")
    await observer.quiet(1.5)
    assert observer.events(T.OPS_AUDIT, subject_ref="A1") == first  # once, not twice


async def test_a_crash_after_the_publish_before_the_offset_commit_publishes_nothing_twice(house, client, observer):
    await house.stop_service("transfer")
    faulty = await _spawn(house, "transfer", OIOO_FAULTS="after_publish=1")
    await _pair(client, 1, T0)
    request = (await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested"))[0]
    assert await _exited(faulty) == -signal.SIGKILL
    await house.start_service("transfer")
    await _pair(client, 2, T0 + MINUTE)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    await observer.quiet(1.5)
    again = observer.events(T.LIAISON_UK_RETURN_REQUESTS, arrival_id="A1")
    assert again == [request]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


async def _answer(port: int, path: str, status: int, timeout: float = 60) -> str:
    for _ in range(int(timeout * 5)):
        got, body = await asyncio.to_thread(_get, port, path)
        if got == status:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} on {port} never answered {status}")


async def test_a_standby_takes_over_when_the_active_instance_is_killed(house, client, observer):
    port = free_port()
    standby = await _spawn(house, "matching", "matching-2", HEALTH_PORT=str(port))
    ready = house.stack.run_dir / "ready" / "matching-2"
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    assert not ready.exists() and standby.poll() is None  # waiting, not consuming
    await _answer(port, "/healthz", 200)
    body = json.loads(await _answer(port, "/readyz", 503))
    assert body["role"] == "standby" and body["checks"]["lease"] is False
    await house.stop_service("matching", kill=True)
    await _pair(client, 2, T0 + HOUR)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2", timeout=60)
    assert ready.read_text().strip() == "active"
    body = json.loads(await _answer(port, "/readyz", 200))
    assert body["role"] == "active" and all(body["checks"].values())
    metrics = await _answer(port, "/metrics", 200)
    assert 'oioo_commit_seconds_count{service="matching"}' in metrics
    standby.send_signal(signal.SIGTERM)
    assert await _exited(standby, 15) == 0


async def test_redis_restored_from_an_older_snapshot_ends_as_if_never_lost(house, client, observer):
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    await observer.quiet(1.0)
    redis = Redis.from_url(house.redis_url)
    snapshot = {key: (await redis.dump(key), await redis.pttl(key)) for key in await redis.keys("*")}
    await _pair(client, 2, T0 + HOUR)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2")
    await observer.quiet(1.0)
    await redis.flushall()
    for key, (value, ttl) in snapshot.items():
        await redis.restore(key, max(ttl, 0), value, replace=True)
    await redis.aclose()
    await _pair(client, 3, T0 + 2 * HOUR)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A3", timeout=60)
    await observer.quiet(2.0)
    requests = observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")
    assert sorted(r["arrival_id"] for r in requests) == ["A1", "A2", "A3"]  # the gap was replayed, not redone
    balance = observer.events(T.OPS_BALANCE, "WeeklyBalance")[-1]
    assert (balance["pairs_formed"], balance["returns_requested"]) == (3, 3)


async def test_a_stalled_redis_is_waited_out_and_nothing_is_lost(house, client, observer):
    before = _pids(house)
    redis_proc = house.stack.redis.process
    os.kill(redis_proc.pid, signal.SIGSTOP)
    try:
        await _pair(client, 1, T0)
        await asyncio.sleep(8)
    finally:
        os.kill(redis_proc.pid, signal.SIGCONT)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1", timeout=60)
    assert _pids(house) == before


async def test_sigterm_finishes_and_exits_cleanly(house, client, observer):
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    procs = {name: svc.process for name, svc in house.stack.services.items()}
    for name in list(procs):
        await house.stop_service(name)  # SIGTERM, SIGKILL only after 10 s
    assert {name: p.returncode for name, p in procs.items()} == dict.fromkeys(procs, 0)


async def test_a_rebuild_whose_log_ends_before_the_committed_offsets_alerts_and_does_not_loop(
        house, client, observer):
    await house.stop_service("transfer")
    # the group says 1,000 instructions were consumed, the log holds none, and Redis is empty
    probe = AIOKafkaConsumer(T.MATCHING_INSTRUCTIONS, bootstrap_servers=house.bootstrap, group_id="oioo-transfer",
                             enable_auto_commit=False, session_timeout_ms=3000, heartbeat_interval_ms=500)
    await probe.start()
    try:
        while not probe.assignment():
            await probe.getmany(timeout_ms=200)
        await probe.commit({TopicPartition(T.MATCHING_INSTRUCTIONS, 0): OffsetAndMetadata(1000, "")})
    finally:
        await probe.stop()
    redis = Redis.from_url(house.redis_url)
    await redis.delete(*await redis.keys("{transfer}:*"))
    await redis.aclose()
    port = free_port()
    proc = await _spawn(house, "transfer", HEALTH_PORT=str(port))
    alert = (await observer.wait_for(T.OPS_ALERTS, "Alert", kind="rebuild_incomplete", timeout=60))[0]
    assert alert["severity"] == "critical" and T.MATCHING_INSTRUCTIONS in alert["message"]
    body = json.loads(await _answer(port, "/readyz", 503))
    assert body["checks"]["state"] is False and proc.poll() is None  # up, not ready, not restarting
    await asyncio.sleep(2)
    assert len(observer.events(T.OPS_ALERTS, kind="rebuild_incomplete")) == 1
    proc.send_signal(signal.SIGTERM)
    assert await _exited(proc, 15) == 0


async def test_a_redis_flush_under_a_live_writer_does_not_hand_the_service_to_its_standby(house, client, observer):
    standby = await _spawn(house, "matching", "matching-2")
    active = house.stack.services["matching"].process
    ready = house.stack.run_dir / "ready" / "matching-2"
    await _pair(client, 1, T0)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1")
    redis = Redis.from_url(house.redis_url)
    await redis.flushall()
    await redis.aclose()
    await _pair(client, 2, T0 + HOUR)
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A2", timeout=60)
    await asyncio.sleep(3)  # longer than the standby's wait on a free lease
    assert active.poll() is None and not ready.exists() and standby.poll() is None
    standby.send_signal(signal.SIGTERM)
    assert await _exited(standby, 15) == 0
