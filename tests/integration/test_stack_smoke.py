"""The embedded infrastructure works: a fresh broker with our topics, and a Redis that answers.

These run without the services, so they stay meaningful while services are being written;
the last one runs `deploy.stack up --standby` / `down` as `make up STANDBY=1` / `make down` do.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy import embedded, stack
from shared import topics as T
from shared.signing import Keyring, verify
from tests.support.client import ContractClient, Observer, make_event

pytestmark = pytest.mark.integration


async def test_broker_has_every_topic_with_its_partitions(infra):
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        assert set(await admin.list_topics()) >= {t.name for t in T.TOPICS}
        described = await admin.describe_topics([t.name for t in T.TOPICS])
    finally:
        await admin.close()
    got = {d["topic"]: len(d["partitions"]) for d in described}
    assert got == {t.name: t.partitions for t in T.TOPICS}


async def test_signed_event_round_trips_through_the_broker(infra):
    keyring = Keyring.from_file(infra.keys_file)
    event = make_event("ArrivalRecorded", "2025-08-10T03:00:00+01:00", arrival_id="arr-smoke-1")
    async with ContractClient(infra.bootstrap, keyring) as client:
        sent = await client.publish(T.BORDER_ARRIVALS, event)
    assert 0 <= sent.partition < T.TOPICS_BY_NAME[T.BORDER_ARRIVALS].partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(T.BORDER_ARRIVALS, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        records = (await consumer.getmany(tp, timeout_ms=10_000)).get(tp, [])
    finally:
        await consumer.stop()
    assert records, "the produced record was not fetched back"
    rec = records[0]
    assert rec.key == b"arr-smoke-1"
    headers = dict(rec.headers)
    assert headers["content-type"] == b"application/json"
    assert verify(keyring, T.BORDER_ARRIVALS, headers, rec.value) is None
    assert verify(keyring, T.CASEWORK_UPDATES, headers, rec.value)[0] == "unauthorised_producer"


async def test_observer_sees_outbound_events_from_the_beginning(infra):
    keyring = Keyring.from_file(infra.keys_file)
    alert = make_event("Alert", "2025-08-10T03:00:00+01:00", alert_id="al-1", severity="info",
                       kind="cap_reached", subject_ref="2025-W32", message="smoke")
    async with ContractClient(infra.bootstrap, keyring) as client:
        await client.publish(T.OPS_ALERTS, alert, key="2025-W32", sign=False)
        async with Observer(infra.bootstrap) as observer:
            [seen] = await observer.wait_for(T.OPS_ALERTS, "Alert", kind="cap_reached", timeout=15)
            assert seen == alert and seen.key == "2025-W32"
            with pytest.raises(AssertionError, match="seen so far"):
                await observer.wait_for(T.OPS_AUDIT, "Decision", timeout=0.5)
            await client.publish(T.OPS_AUDIT, make_event("Decision", "2025-08-10T03:00:00+01:00"),
                                 key="x", sign=False)
            await observer.wait_for(lambda e: e.topic == T.OPS_AUDIT, timeout=15)
            assert [e.topic for e in observer.events()] == [T.OPS_ALERTS, T.OPS_AUDIT]


async def test_redis_answers(infra):
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        assert await client.ping()
        await client.set("smoke", "1")
        assert await client.get("smoke") == b"1"
    finally:
        await client.aclose()


def _stack(run_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # never a developer's Redis
    return subprocess.run([sys.executable, "-m", "deploy.stack", *args, "--run-dir", str(run_dir)],
                          cwd=embedded.REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


async def test_stack_up_with_standby_supervises_and_down_leaves_nothing_running(embedded_binaries, tmp_path):
    run = stack.RunDir(tmp_path / "run")
    loop = asyncio.get_running_loop()
    started = await loop.run_in_executor(None, _stack, run.root, "up", "--standby", "--timeout", "180")
    seen: list[dict] = []
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pids = stack.read_pids(run)
        instances = [n for s in embedded.SERVICES for n in embedded.instance_names(s, standby=True)]
        assert set(pids) == {"supervise", "dashboard", "broker", "redis", *instances}
        seen += pids.values()
        assert all(stack.is_ours(e) for e in pids.values())

        env = dict(line.split("=", 1) for line in run.stack_env.read_text().splitlines())
        with urllib.request.urlopen(env["DASHBOARD_URL"], timeout=10) as page:
            assert page.status == 200 and b"<h1" in page.read()
        health, metrics = embedded.parse_url_map(env["HEALTH_URLS"]), embedded.parse_url_map(env["METRICS_URLS"])
        assert set(health) == set(metrics) == set(instances)
        ports = {n: int(url.rsplit(":", 1)[1].split("/")[0]) for n, url in health.items()}
        assert len(set(ports.values())) == len(instances)
        for name in instances:
            assert health[name].endswith("/healthz") and metrics[name].endswith("/metrics")
            proc_env = _environ(pids[name]["pid"])
            assert proc_env["SERVICE_INSTANCE"] == name and proc_env["HEALTH_PORT"] == str(ports[name])

        # a crash of a detached instance: the supervisor restarts it and rewrites its pid file
        os.kill(pids["matching-2"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (entry := stack.read_pids(run)["matching-2"])["pid"] == pids["matching-2"]["pid"]:
            assert time.monotonic() < deadline, "matching-2 was not restarted"
            await asyncio.sleep(0.1)
        seen.append(entry)
        assert stack.is_ours(entry) and entry["restarts"] == 1
        assert _environ(entry["pid"])["HEALTH_PORT"] == str(ports["matching-2"])
    finally:
        stopped = await loop.run_in_executor(None, _stack, run.root, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [e["pid"] for e in seen if stack.is_ours(e)] == []
    assert not list(run.pids.glob("*.pid")) and not run.stack_env.exists()
