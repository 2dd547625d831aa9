"""The handle a test gets for one running house (see the `house` fixture in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

from deploy.embedded import EmbeddedStack, tail
from shared.signing import Keyring
from tests.support.client import ContractClient, Observer


class House:
    """A fresh broker, a fresh Redis and the four services, owned by one test."""

    def __init__(self, stack: EmbeddedStack):
        self.stack = stack
        self.bootstrap = stack.bootstrap
        self.redis_url = stack.redis_url
        self.keys_file: Path = stack.keys_file
        self.keyring = Keyring.from_file(stack.keys_file)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.stack.services)

    async def stop_service(self, name: str, *, kill: bool = False) -> None:
        """SIGTERM (graceful) or, with kill=True, SIGKILL (a crash); waits until it is gone."""
        import asyncio

        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.stack.stop_service(name, kill=kill))

    async def start_service(self, name: str, timeout: float | None = None) -> None:
        """Start it again (same broker and Redis) and wait until it is consuming."""
        if name in self.stack.services and self.stack.services[name].alive:
            raise RuntimeError(f"service {name} is already running")
        await self.stack.start_service_async(name, timeout)

    async def restart_service(self, name: str, *, kill: bool = False) -> None:
        await self.stop_service(name, kill=kill)
        await self.start_service(name)

    def log(self, name: str, lines: int = 200) -> str:
        """The tail of a service's (or "broker"/"redis") log."""
        return tail(self.stack.log_path(name), lines)

    def client(self) -> ContractClient:
        return ContractClient(self.bootstrap, self.keyring)

    def observer(self) -> Observer:
        return Observer(self.bootstrap)
