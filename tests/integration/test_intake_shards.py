"""Intake and enforcement in two shards each decide a flood as one of each does (shared/shards.py).

The history of test_event_order is published while intake is down. One intake then decides it
in event-time order; two shards each decide their share, shard 0 first and alone, shard 1 only
once shard 0 has caught up (and, in one run, killed after half of its Redis commits and
started again each time). Enforcement must wait for shard 1's partition however long it is
silent, and merge the two partitions back into the one intake's order: the screened events
and the pairs are the same. With enforcement in two shards as well (each its own people),
matching merges their partitions again: the same instructions in the same order, the same pairs.
"""
from __future__ import annotations

import asyncio

import pytest

from deploy.embedded import EmbeddedStack, service_env, start_service, terminate
from shared import topics as T
from shared.shards import MARK
from shared.topics import catalogue
from tests.integration.test_event_order import history, pairs
from tests.support.client import OUTBOUND_TOPICS, ContractClient, Observer
from tests.support.house import House

pytestmark = pytest.mark.integration


def _screened(observer: Observer) -> list[str]:
    return [e["event"]["event_id"] for e in observer.events(T.ENFORCEMENT_SCREENED) if e.raw != MARK]


def _instructions(observer: Observer) -> list[str]:
    return [e["instruction_id"] for e in observer.events(T.MATCHING_INSTRUCTIONS)]


def _marks(observer: Observer, partition: int) -> int:
    return sum(1 for e in observer.events(T.INTAKE_ACCEPTED) if e.raw == MARK and e.partition == partition)


async def _shard_one_crashing(stack: EmbeddedStack, observer: Observer, expected: int) -> int:
    """Shard 1 killed (SIGKILL) after half of its commits, before it publishes, until enforcement
    has screened everything; returns the crashes."""
    crashes = 0
    while True:
        env = service_env(stack.bootstrap, stack.redis_url, stack.ready_path("intake-s1"), stack.keys_file)
        env.update({"SERVICE_INSTANCE": "intake-s1", "INTAKE_SHARDS": "2", "SERVICE_SHARD": "1",
                    "OIOO_FAULTS": "after_commit=0.5", "OIOO_FAULTS_SEED": str(crashes)})
        proc = start_service("intake", env, stack.log_path("intake-s1")).process
        while proc.poll() is None and len(_screened(observer)) < expected:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            terminate(proc)
            return crashes
        crashes += 1


async def _flood(tmp_path, name: str, events: list, shards: int, crashes: bool = False,
                 enforcement_shards: int = 1) -> tuple[set, list[str], list[str], int]:
    stack = EmbeddedStack(tmp_path / name, intake_shards=shards, enforcement_shards=enforcement_shards)
    await stack.start_infra_async()
    stack.plan_instances()
    house = House(stack)
    try:
        # intake has never run: the history waits on its inputs
        await stack.start_instances_async([*stack.instances_of("enforcement"), "matching", "transfer"])
        stack.start_supervising()
        async with ContractClient(house.bootstrap, house.keyring) as client, \
                Observer(house.bootstrap, (*OUTBOUND_TOPICS, T.INTAKE_ACCEPTED, T.ENFORCEMENT_SCREENED,
                                              T.MATCHING_INSTRUCTIONS), catalogue(shards, enforcement_shards)) as observer:
            for _, topic, event in events:
                await client.publish(topic, event)
            crashed = 0
            if shards == 1:
                await house.start_service("intake")
            else:
                stack.spawn_instance("intake")  # shard 0 alone: it decides its share and says so
                await observer.wait_for(lambda e: e.raw == MARK and e.partition == 0)
                await observer.quiet(1.0)
                assert _marks(observer, 1) == 0
                assert _screened(observer) == [], "enforcement went on without shard 1's partition"
                if crashes:
                    crashed = await _shard_one_crashing(stack, observer, len(events))
                else:
                    stack.spawn_instance("intake-s1")
            await observer.wait_for(lambda e: e.topic == T.ENFORCEMENT_SCREENED and e.raw != MARK, count=len(events))
            await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=8)
            await observer.quiet(2.0)
            return pairs(observer), _screened(observer), _instructions(observer), crashed
    finally:
        await stack.stop_async()


async def test_two_intake_shards_decide_a_flood_as_one_intake(embedded_binaries, tmp_path):
    events = history()  # the same events (and ids) in every run
    one_pairs, one_order, one_told, _ = await _flood(tmp_path, "one", events, shards=1)
    assert len(one_pairs) == 8 and len(one_order) == len(events) and one_told
    two_pairs, two_order, two_told, _ = await _flood(tmp_path, "two", events, shards=2)
    assert two_order == one_order
    assert two_pairs == one_pairs and two_told == one_told
    crashed_pairs, crashed_order, crashed_told, crashes = await _flood(tmp_path, "crashes", events, shards=2,
                                                                      crashes=True)
    assert crashes >= 1
    assert crashed_order == one_order
    assert crashed_pairs == one_pairs and crashed_told == one_told


async def test_two_shards_of_enforcement_behind_two_of_intake_decide_a_flood_as_one_of_each(embedded_binaries,
                                                                                           tmp_path):
    events = history()
    one_pairs, one_order, one_told, _ = await _flood(tmp_path, "one", events, shards=1)
    both_pairs, both_order, both_told, _ = await _flood(tmp_path, "both", events, shards=2, enforcement_shards=2)
    assert sorted(both_order) == sorted(one_order)  # each event screened once, by one shard
    assert both_told == one_told  # matching's instructions, in the order one enforcement gave
    assert both_pairs == one_pairs and len(one_pairs) == 8
