"""The handle a test gets for one running house (see the `house` fixture in tests/conftest.py)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from deploy.embedded import EmbeddedStack, tail
from shared.signing import Keyring
from tests.support.client import ContractClient, Observer


class House:
    """A fresh broker, a fresh Redis and the four services (with `@pytest.mark.house(standby=True)`
    two instances of each: `intake`, `intake-2`, ...), owned by one test and supervised: an
    instance that dies is restarted, one stopped on purpose stays stopped."""

    def __init__(self, stack: EmbeddedStack):
        self.stack = stack
        self.bootstrap = stack.bootstrap
        self.redis_url = stack.redis_url
        self.keys_file: Path = stack.keys_file
        self.keyring = Keyring.from_file(stack.keys_file)

    @property
    def services(self) -> tuple[str, ...]:
        """The instances running now (`intake`, and `intake-2` with a standby)."""
        return tuple(self.stack.services)

    def instances(self, service: str) -> list[str]:
        return self.stack.instances_of(service)

    def pid(self, instance: str) -> int:
        return self.stack.services[instance].process.pid

    async def stop_service(self, name: str, *, kill: bool = False) -> None:
        """Stop every instance of service `name` on purpose (the supervisor leaves it stopped):
        SIGTERM (graceful) or, with kill=True, SIGKILL; waits until they are gone."""
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.stack.stop_service(name, kill=kill))

    async def stop_instance(self, instance: str, *, kill: bool = False) -> None:
        """Like stop_service, for one instance (`matching-2`)."""
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.stack.stop_instance(instance, kill=kill))

    async def start_service(self, name: str, timeout: float | None = None) -> None:
        """Start a stopped service (or instance) again, same broker and Redis, and wait until
        the service has an active instance."""
        names = self.stack.instances_of(name) or [name]
        if all(n in self.stack.services and self.stack.services[n].alive for n in names):
            raise RuntimeError(f"{name} is already running")
        await self.stack.start_service_async(name, timeout)

    async def restart_service(self, name: str, *, kill: bool = False) -> None:
        await self.stop_service(name, kill=kill)
        await self.start_service(name)

    # -- crashes: the supervisor brings these back by itself
    def kill(self, instance: str) -> int:
        """kill -9 `instance` without waiting; returns its restart count before, for wait_replaced."""
        return self.stack.kill_instance(instance)

    async def wait_replaced(self, instance: str, restarts_before: int, timeout: float = 60.0) -> int:
        """Until the supervisor restarted `instance` and its service is active again; the new pid."""
        return (await self.stack.wait_replaced_async(instance, restarts_before, timeout)).process.pid

    async def crash(self, instance: str, timeout: float = 60.0) -> int:
        """kill -9 `instance` and wait until its replacement is back; the new pid."""
        return (await self.stack.crash_async(instance, timeout)).process.pid

    def restarts(self, instance: str | None = None) -> int:
        """Restarts by the supervisor, of one instance or of all."""
        return self.stack.restarts[instance] if instance else sum(self.stack.restarts.values())

    @property
    def health_urls(self) -> dict[str, str]:
        return self.stack.health_urls

    @property
    def metrics_urls(self) -> dict[str, str]:
        return self.stack.metrics_urls

    def log(self, name: str, lines: int = 200) -> str:
        """The tail of an instance's (or "broker"/"redis") log."""
        return tail(self.stack.log_path(name), lines)

    def client(self) -> ContractClient:
        return ContractClient(self.bootstrap, self.keyring)

    def observer(self) -> Observer:
        return Observer(self.bootstrap)
