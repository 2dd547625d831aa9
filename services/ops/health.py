"""The services as ops see them from outside: consumer lag per group, and readiness.

Lag is the group's committed offsets against the partitions' ends: what a service has read,
decided and committed, against what is waiting for it. Readiness is each instance's `/readyz`
(listed in HEALTH_URLS); a service without a URL there is reported as unknown, never as down.
"""
from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient

from services.ops.topics_reader import EndOffsets, partitions

# Each service's consumer group and its input topics (a unit test holds this to the services).
def _group_inputs() -> dict[str, tuple[str, ...]]:
    """Each service's consumer group and its input topics, from the service classes."""
    from deploy.acls import consumer_group, service_inputs

    return {consumer_group(name): topics for name, topics in service_inputs().items()}


GROUP_INPUTS: dict[str, tuple[str, ...]] = _group_inputs()


def groups_for(env: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """The groups of a running system: each service's, and with enforcement in shards
    (ENFORCEMENT_SHARDS in its stack env) each further shard's own (shared/shards.py)."""
    shards = int(env.get("ENFORCEMENT_SHARDS") or 1)
    enforcement = GROUP_INPUTS["oioo-enforcement"]
    return {**GROUP_INPUTS, **{f"oioo-enforcement-s{k}": enforcement for k in range(1, shards)}}


@dataclass(frozen=True)
class GroupLag:
    group: str
    committed: int  # summed over the group's partitions (a partition never committed counts 0)
    end: int
    never_committed: int  # partitions with records but no commit yet

    @property
    def lag(self) -> int:
        return self.end - self.committed


@dataclass(frozen=True)
class Readiness:
    instance: str
    url: str
    ready: bool
    detail: str


class LagProbe:
    """Committed offsets (admin client) and end offsets (a group-less consumer), kept open."""

    def __init__(self, bootstrap: str, groups: dict[str, tuple[str, ...]] = GROUP_INPUTS, timeout: float = 10.0):
        self.groups = groups
        self.timeout = timeout
        self.ends = EndOffsets(bootstrap)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))

    async def start(self) -> "LagProbe":
        try:
            await self.ends.start()
            await self.admin.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        for closer in (self.ends.stop, self.admin.close):
            try:
                await closer()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def __call__(self) -> list[GroupLag]:
        every = sorted({tp for topics in self.groups.values() for tp in partitions(topics)})
        ends = await self.ends(every, self.timeout)
        out = []
        for group, topics in self.groups.items():
            mine = partitions(topics)
            # partitions named explicitly: Tansu answers the "all partitions" form with a
            # response aiokafka cannot decode
            got = await self.admin.list_consumer_group_offsets(group, partitions=mine)
            committed = never = end = 0
            for tp in mine:
                meta = got.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else None
                end += ends[tp]
                if done is None:
                    never += ends[tp] > 0
                else:
                    committed += done
            out.append(GroupLag(group, committed, end, never))
        return out


async def consumer_lag(bootstrap: str, groups: dict[str, tuple[str, ...]] = GROUP_INPUTS,
                       timeout: float = 10.0) -> list[GroupLag]:
    probe = await LagProbe(bootstrap, groups, timeout).start()
    try:
        return await probe()
    finally:
        await probe.stop()


def _get_ready(instance: str, url: str, timeout: float) -> Readiness:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout) as resp:  # noqa: S310 - operator's own URL
            return Readiness(instance, url, resp.status == 200, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Readiness(instance, url, False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        return Readiness(instance, url, False, f"unreachable ({exc.__class__.__name__})")


async def readiness(urls: dict[str, str], timeout: float = 2.0) -> list[Readiness]:
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(None, _get_ready, name, url, timeout)
                                       for name, url in sorted(urls.items()))))



async def redis_answers(url: str, timeout: float = 2.0) -> str:
    """"answers" or why not: read-only, a PING and nothing else."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return "answers" if await client.ping() else "no answer"
    except (RedisError, OSError) as exc:
        return f"unreachable ({exc.__class__.__name__})"
    finally:
        await client.aclose()
