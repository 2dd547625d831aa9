"""The embedded stack's own rules: Redis ownership, readiness failures, topic creation."""
from __future__ import annotations

import asyncio
import sys

import pytest
import redis

from deploy import embedded
from shared.topics import TOPICS
from deploy.embedded import ServiceProcess, spawn, start_redis, wait_ready_async

pytestmark = pytest.mark.integration


def test_redis_prefers_a_url_that_answers_and_never_owns_it(embedded_binaries):
    own = start_redis(None)
    try:
        assert own.owned and own.alive
        reused = start_redis(own.url)
        assert not reused.owned and reused.url == own.url
        reused.stop()  # must not stop a server it does not own
        assert redis.Redis.from_url(own.url).ping()
    finally:
        own.stop()
    assert own.process.poll() is not None and not own.workdir.exists()


def test_redis_starts_its_own_when_the_url_does_not_answer(embedded_binaries):
    server = start_redis(f"redis://127.0.0.1:{embedded.free_port()}/0")
    try:
        assert server.owned and redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


async def test_a_service_that_dies_before_ready_fails_fast_with_its_log(tmp_path):
    log = tmp_path / "svc.log"
    proc = spawn([sys.executable, "-c", "print('boom: bad config'); raise SystemExit(2)"], log)
    svc = ServiceProcess("fake", proc, log, tmp_path / "ready")
    with pytest.raises(RuntimeError, match="(?s)exited with 2.*boom: bad config"):
        await wait_ready_async([svc.ready_file], 10, [svc])


async def test_ready_timeout_names_the_missing_service(tmp_path):
    log = tmp_path / "slow.log"
    proc = spawn([sys.executable, "-c", "import time; print('still starting', flush=True); time.sleep(30)"], log)
    svc = ServiceProcess("slow", proc, log, tmp_path / "ready")
    try:
        await asyncio.sleep(0.3)
        with pytest.raises(TimeoutError, match="(?s)slow log tail.*still starting"):
            await wait_ready_async([svc.ready_file], 0.3, [svc])
    finally:
        svc.stop()


async def test_create_topics_cli_is_idempotent_on_a_broker_that_has_them(infra):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.create_topics", "--bootstrap", infra.bootstrap, "--wait", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=embedded.REPO_ROOT)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert f"{len(TOPICS)} topics present".encode() in out
