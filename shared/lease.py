"""One writer per service: a lease in Redis whose value carries a fencing token.

The instance that holds `{service}:lease` is the only one that consumes, commits and relays;
every commit script checks the lease value, so an instance that lost it (paused, partitioned,
replaced) can never write again, even if it has not noticed yet. The token comes from a
counter that only grows, so each holding is unique. A second instance waits as a hot standby
and takes the lease within one TTL of the first dying.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from shared.backoff import until_done
from shared.store import RecordStore

log = logging.getLogger("oioo.lease")

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local value = tostring(redis.call('INCR', KEYS[2])) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held then return 0 end
return -1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, store: RecordStore, instance: str, ttl_ms: int):
        self.keys = [store.lease_key, store.fence_key]
        self.service = store.ns
        self.instance = instance
        self.ttl_ms = ttl_ms
        self._redis = redis
        self.value: str | None = None  # "<token>:<instance>:<nonce>" while held
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return self.value is not None

    @property
    def token(self) -> int | None:
        return int(self.value.split(":", 1)[0]) if self.value else None

    async def try_acquire(self) -> bool:
        got = await self._acquire(keys=self.keys, args=[f"{self.instance}:{uuid.uuid4().hex[:12]}", self.ttl_ms])
        if got:
            self.value = got.decode() if isinstance(got, bytes) else got
            log.info("%s holds the lease with fencing token %s", self.instance, self.token)
            return True
        return False

    async def renew(self) -> str:
        """'held', 'gone' (the key vanished: Redis flushed or restarted empty) or 'taken'."""
        if self.value is None:
            return "gone"
        result = int(await self._renew(keys=self.keys[:1], args=[self.value, self.ttl_ms]))
        return {1: "held", 0: "gone"}.get(result, "taken")

    async def holder(self) -> str | None:
        value = await self._redis.get(self.keys[0])
        return value.decode() if isinstance(value, bytes) else value

    async def hold_again(self) -> bool:
        """After the lease vanished (expired while Redis stalled, or Redis emptied): True when
        this instance holds it again — re-acquired now, or by another task of this instance."""
        if await self.holder() is None and await self.try_acquire():
            return True
        return self.value is not None and await self.holder() == self.value

    async def release(self) -> None:
        if self.value is not None:
            await self._release(keys=self.keys[:1], args=[self.value])
            self.value = None

    # ---- over time: waiting for the lease, then keeping it --------------------------------
    async def stand_by(self, stop: asyncio.Event, outage: Callable[[bool], None]) -> bool:
        """Wait until this instance holds the lease; False when `stop` is set first.

        A standby that has seen the lease held takes a free one only after it stayed free for
        half a TTL: when Redis is emptied under a live writer, that writer takes it back first
        (its keeper looks every third of a TTL), so a Redis fault does not hand the service over."""
        held_before, free_since = False, None
        while not stop.is_set():
            holder = await until_done("redis (lease)", self.holder, outage)
            if holder is not None:
                if not held_before:
                    log.info("%s: standing by; %s holds the lease", self.instance, self.service)
                held_before, free_since = True, None
            elif held_before and free_since is None:
                free_since = time.monotonic()
            elif not held_before or time.monotonic() - free_since >= self.ttl_ms / 2000:
                if await until_done("redis (lease)", self.try_acquire, outage):
                    return True
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.2, self.ttl_ms / 3000))
            except asyncio.TimeoutError:
                pass
        return False

    async def keep(self, outage: Callable[[bool], None], held_again: Callable[[], None]) -> None:
        """Renew every third of a TTL; returns once another instance holds the lease. A lease
        that vanished (it expired while Redis stalled, or Redis was emptied) is held again if
        it can be, and `held_again` is told so the state is reloaded if anyone wrote meanwhile."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                state = await self.renew()
                outage(False)
            except Exception:  # noqa: BLE001 - an outage: the commit script fences us if it lasts
                outage(True)
                continue
            if state == "gone":
                if await self.hold_again():
                    log.warning("%s: the lease had vanished; held again", self.instance)
                    held_again()
                    continue
                state = "taken"
            if state == "taken":
                return
