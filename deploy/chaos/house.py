"""The house under test: the embedded broker and Redis, two instances of every service, and a
supervisor that restarts whatever exits, as compose's restart policy would.

Every instance runs with a short lease (LEASE_TTL_MS=2000) so a standby takes over within a
few seconds of the active one dying. The supervisor tells apart the exits it expects: killed
by the chaos driver, killed by an armed fault point (a SIGKILL nobody here sent), the lease
lost (exit 75); anything else is an unexpected exit and is reported.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from deploy.embedded import SERVICES, EmbeddedStack, cancel, ServiceProcess, redis_answers, service_env, spawn, \
    start_service
from shared.runtime import LEASE_LOST_EXIT

LEASE_TTL_MS = "2000"


@dataclass
class Instance:
    service: str
    name: str  # SERVICE_INSTANCE: "<service>" or "<service>-2"
    proc: ServiceProcess | None = None
    armed: str = ""  # the OIOO_FAULTS this process was started with
    next_faults: str = ""  # the OIOO_FAULTS of its next restart (then unarmed again)
    killed_by_us: set[int] = field(default_factory=set)
    restart_at: float | None = None


class House:
    def __init__(self, stack: EmbeddedStack, rng: random.Random):
        self.stack = stack
        self.rng = rng
        self.instances = {f"{s}{suffix}": Instance(s, f"{s}{suffix}") for s in SERVICES for suffix in ("", "-2")}
        self.exits: Counter = Counter()  # how processes ended: killed, fault point, lease lost, unexpected
        self.unexpected: list[str] = []
        self.restarts = 0
        self._task: asyncio.Task | None = None
        self.redis: Redis | None = None

    # ---- instances -------------------------------------------------------------------------
    def spawn(self, inst: Instance, faults: str = "") -> None:
        stack = self.stack
        env = service_env(stack.bootstrap, stack.redis_url, stack.run_dir / "ready" / inst.name, stack.keys_file)
        env.update({"SERVICE_INSTANCE": inst.name, "LEASE_TTL_MS": LEASE_TTL_MS, "OIOO_FAULTS": faults,
                    "OIOO_FAULTS_SEED": str(self.rng.randrange(1 << 30))})
        inst.proc = start_service(inst.service, env, stack.log_path(inst.name))
        inst.armed = faults
        inst.restart_at = None

    async def start(self, timeout: float = 120.0) -> None:
        self.redis = Redis.from_url(self.stack.redis_url, socket_timeout=5, socket_connect_timeout=2)
        for inst in self.instances.values():
            self.spawn(inst)
        await self.wait_active(timeout)
        self._task = asyncio.create_task(self._supervise())

    async def wait_active(self, timeout: float) -> None:
        """Until every service has an active instance with an empty outbox."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all([await self.active(s) for s in SERVICES]) and \
                        not any([await self.redis.llen(f"{{{s}}}:outbox") for s in SERVICES]):
                    return
            except Exception:  # noqa: BLE001 - Redis being restarted
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every service active after {timeout:.0f}s")
            await asyncio.sleep(0.2)

    async def active(self, service: str) -> str | None:
        """The instance holding the service's lease (None: nobody, or Redis unreachable)."""
        value = await self.redis.get(f"{{{service}}}:lease")
        if not value:
            return None
        name = value.decode().split(":")[1]
        inst = self.instances.get(name)
        return name if inst and inst.proc and inst.proc.alive else None

    def kill(self, name: str) -> bool:
        inst = self.instances[name]
        if inst.proc is None or not inst.proc.alive:
            return False
        inst.killed_by_us.add(inst.proc.process.pid)
        os.kill(inst.proc.process.pid, signal.SIGKILL)
        return True

    async def _supervise(self) -> None:
        while True:
            now = time.monotonic()
            for inst in self.instances.values():
                proc = inst.proc.process if inst.proc else None
                if proc is None or proc.poll() is None:
                    continue
                if inst.restart_at is None:
                    self._note_exit(inst, proc.returncode, proc.pid)
                    inst.restart_at = now + self.rng.uniform(1.0, 2.0)
                elif now >= inst.restart_at:
                    self.restarts += 1
                    # armed only when the chaos driver asked: a crash at a fault point restarts unarmed
                    self.spawn(inst, inst.next_faults)
                    inst.next_faults = ""
            await asyncio.sleep(0.1)

    def _note_exit(self, inst: Instance, code: int, pid: int) -> None:
        if code == -signal.SIGKILL and pid in inst.killed_by_us:
            self.exits["killed (kill -9)"] += 1
        elif code == -signal.SIGKILL and inst.armed:
            points = " or ".join(p.split("=")[0] for p in inst.armed.split(","))
            self.exits[f"died at a fault point ({points})"] += 1
        elif code == LEASE_LOST_EXIT:
            self.exits["lease lost (exit 75)"] += 1
        else:
            self.exits["unexpected exit"] += 1
            self.unexpected.append(f"{inst.name} (pid {pid}) exited with {code}; see {inst.proc.log_path}")

    # ---- Redis -----------------------------------------------------------------------------
    async def restart_redis(self, down_for: float) -> None:
        """kill -9 the embedded redis-server and start the same command line on the same port
        (it has no persistence: it comes back empty)."""
        server = self.stack.redis
        old = server.process
        old.kill()
        old.wait(10)
        await asyncio.sleep(down_for)
        server.process = spawn(old.args, server.log_path)
        deadline = time.monotonic() + 20
        while not redis_answers(server.url, 0.2):
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise RuntimeError(f"redis-server did not come back on {server.url}")
            await asyncio.sleep(0.05)

    async def snapshot(self) -> dict[bytes, tuple[bytes, int]]:
        """Every key, dumped in one transaction (a consistent point in time, as a backup is)."""
        while True:
            keys = await self.redis.keys("*")
            pipe = self.redis.pipeline(transaction=True)
            pipe.keys("*")
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            got = await pipe.execute()
            if sorted(got[0]) == sorted(keys):
                return {key: (got[1 + 2 * i], got[2 + 2 * i]) for i, key in enumerate(keys)}

    async def restore(self, snap: dict[bytes, tuple[bytes, int]]) -> None:
        """FLUSHALL and RESTORE in one transaction: Redis jumps back to the snapshot at once."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.flushall()
        for key, (value, ttl) in snap.items():
            if value is not None:
                pipe.restore(key, max(ttl, 0), value, replace=True)
        await pipe.execute()

    # ---- the end -----------------------------------------------------------------------------
    async def stop(self) -> None:
        await cancel(self._task)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*[loop.run_in_executor(None, inst.proc.stop) for inst in self.instances.values()
                               if inst.proc is not None])
        if self.redis is not None:
            try:
                await self.redis.aclose()
            except Exception:  # noqa: BLE001 - Redis may be gone
                pass
