"""The faults, planned from the seed and injected while the world runs.

A plan is a list of (when, kind): `when` is a fraction of the simulated run (the fault waits
until the world has got that far, then a random moment under a second more). Kinds:

- `kill`: kill -9 one instance of a random service, mostly the active one (a takeover);
- `armed_kill`: kill -9 a service's standby, restart it with fault points armed
  (OIOO_FAULTS), then kill -9 the active instance so the armed one takes over: it then dies,
  with that probability per batch, between the Redis commit and the publish (after_commit) or
  between the publish and the offset commit (after_publish);
- `broker_pause`: SIGSTOP the broker for a while, then SIGCONT (always, even on the way out);
- `redis_restart`: kill -9 redis-server and start it again on the same port, empty;
- `redis_flush`: FLUSHALL;
- `snapshot` / `redis_restore`: a consistent copy of Redis taken early, restored much later.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from deploy.chaos.house import House
from deploy.embedded import SERVICES

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Profile:
    kills: int
    armed_kills: int  # each is two kills: the standby (restarted armed), then the active one
    fault_probability: float
    pauses: tuple[float, float]  # seconds, (shortest, longest)
    n_pauses: int


FULL = Profile(kills=16, armed_kills=4, fault_probability=0.05, pauses=(20.0, 45.0), n_pauses=2)
SHORT = Profile(kills=3, armed_kills=1, fault_probability=0.25, pauses=(5.0, 5.0), n_pauses=1)


def plan(rng: random.Random, profile: Profile) -> list[tuple[float, str]]:
    steps = [(rng.uniform(0.05, 0.95), "kill") for _ in range(profile.kills)]
    steps += [(rng.uniform(0.1, 0.8), "armed_kill") for _ in range(profile.armed_kills)]
    pauses = [rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)][:profile.n_pauses]
    steps += [(at, "broker_pause") for at in pauses]
    steps += [(rng.uniform(0.1, 0.25), "snapshot"), (rng.uniform(0.3, 0.45), "redis_flush"),
              (rng.uniform(0.5, 0.65), "redis_restore"), (rng.uniform(0.7, 0.85), "redis_restart")]
    return sorted(steps)


class Chaos:
    def __init__(self, house: House, rng: random.Random, profile: Profile, progress: Callable[[], float]):
        self.house = house
        self.rng = rng
        self.profile = profile
        self.progress = progress
        self.injected: Counter = Counter()
        self.pause_seconds: list[float] = []
        self.broker_lock = asyncio.Lock()  # held while the broker is stopped, and by the world's reads
        self._snapshot: dict | None = None
        self.due = 0.0  # the progress at which the next planned fault is due
        self.timeline: list[str] = []  # what happened, at what point of the run
        self._armed_turn = 0

    async def run(self, steps: list[tuple[float, str]]) -> None:
        try:
            for at, kind in steps:
                self.due = at
                while self.progress() < at:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(self.rng.uniform(0.0, 1.0))
                log.warning("chaos at %.0f%% of the run: %s", 100 * self.progress(), kind)
                self.timeline.append(f"{100 * self.progress():3.0f}% {kind}")
                await getattr(self, kind)()
        finally:
            self.due = float("inf")

    async def keep_up(self) -> None:
        """Hold the world while a fault it has reached is still to come (a short run would
        otherwise outrun the plan); the fault lands while the services work on the step."""
        while self.due <= self.progress():
            await asyncio.sleep(0.05)

    # ---- services ------------------------------------------------------------------------
    async def _pick(self, service: str, active: bool) -> str:
        try:
            holder = await self.house.active(service)
        except Exception:  # noqa: BLE001 - Redis down right now: any instance will do
            holder = None
        names = [f"{service}", f"{service}-2"]
        if holder is None:
            return self.rng.choice(names)
        return holder if active else next(n for n in names if n != holder)

    async def kill(self) -> None:
        # spare a service whose instance is armed: its fault point should get the chance to fire
        armed = {i.service for i in self.house.instances.values() if i.armed and i.proc and i.proc.alive}
        service = self.rng.choice([s for s in SERVICES if s not in armed] or list(SERVICES))
        name = await self._kill(service, active=self.rng.random() < 0.8)
        self.timeline[-1] += f" {name}"

    async def _kill(self, service: str, active: bool, spare: str | None = None) -> str | None:
        """kill -9 an instance of `service` (the active one, or the standby); if both are down
        right now (restarting), try again for a few seconds."""
        for _ in range(50):
            name = await self._pick(service, active)
            if name == spare:
                return None  # the armed instance is active already
            if self.house.kill(name):
                self.injected["kill -9 (a service instance)"] += 1
                return name
            await asyncio.sleep(0.2)
        return None

    async def armed_kill(self) -> None:
        service = self.rng.choice(SERVICES)
        p = self.profile.fault_probability
        if self.profile.armed_kills == 1:
            faults = f"after_commit={p},after_publish={p}"
        else:
            faults = f"{('after_commit', 'after_publish')[self._armed_turn % 2]}={p}"
            self._armed_turn += 1
        standby = await self._pick(service, active=False)
        inst = self.house.instances[standby]
        inst.next_faults = faults
        if self.house.kill(standby):
            self.injected["kill -9 (a service instance)"] += 1
        self.timeline[-1] += f" {standby} (restarted with {faults})"
        # wait for the supervisor to restart it armed, and for it to be up and standing by
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (inst.armed == faults and inst.proc.alive):
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)
        self.injected["restart with fault points armed"] += 1
        self.timeline[-1] += f", then {await self._kill(service, active=True, spare=standby)}"

    # ---- the broker ------------------------------------------------------------------------
    async def broker_pause(self) -> None:
        low, high = self.profile.pauses
        seconds = self.rng.uniform(low, high)
        pid = self.house.stack.broker.process.pid
        async with self.broker_lock:
            os.kill(pid, signal.SIGSTOP)
            try:
                self.injected["broker paused (SIGSTOP)"] += 1
                await asyncio.sleep(seconds)
            finally:
                self.resume_broker()
        self.pause_seconds.append(round(seconds, 1))
        self.timeline[-1] += f" for {seconds:.1f} s"

    def resume_broker(self) -> None:
        """The way out: never leave the broker stopped."""
        broker = self.house.stack.broker
        if broker is not None and broker.process is not None and broker.process.poll() is None:
            try:
                os.kill(broker.process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # ---- Redis ---------------------------------------------------------------------------------
    async def redis_restart(self) -> None:
        await self.house.restart_redis(down_for=self.rng.uniform(1.0, 2.0))
        self.injected["Redis killed and restarted empty"] += 1

    async def redis_flush(self) -> None:
        await self._retry(lambda: self.house.redis.flushall())
        self.injected["Redis flushed (FLUSHALL)"] += 1

    async def snapshot(self) -> None:
        self._snapshot = await self._retry(self.house.snapshot)

    async def redis_restore(self) -> None:
        if self._snapshot is None:
            return
        await self._retry(lambda: self.house.restore(self._snapshot))
        self.injected["Redis restored from an earlier snapshot"] += 1

    @staticmethod
    async def _retry(action):
        for attempt in range(50):
            try:
                return await action()
            except Exception:  # noqa: BLE001 - Redis restarting: try again shortly
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
