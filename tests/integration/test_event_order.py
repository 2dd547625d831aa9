"""A flood decides as a slow run does: intake merges its inbound partitions in event-time order.

A history is published in event-time order across topics and partitions while intake is down,
so when it starts every partition is full and its fetches interleave them as they come. The
same history published one event at a time, each accepted before the next is sent, is the slow
run. Arrivals come slower than applicants and applicants of a priority nationality apply later:
each arrival pairs with the best applicant ready *at its time*, so an order that reads the
applications before the arrivals (or after) pairs other people.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from deploy.embedded import EmbeddedStack, service_env, start_service, terminate
from shared import topics as T
from tests.support import factory as f
from tests.support.client import OUTBOUND_TOPICS, ContractClient, Observer
from tests.support.factory import MINUTE, T0
from tests.support.house import House

pytestmark = pytest.mark.integration


def history() -> list[tuple[datetime, str, dict]]:
    """(event time, topic, event): 8 arrivals every 30 minutes, 16 applicants every 15 minutes,
    every third of them Eritrean (a priority nationality)."""
    events = []
    for i in range(8):
        at = T0 + (30 * i + 29) * MINUTE
        events.append((at, T.BORDER_ARRIVALS, f.arrival(f"A{i:02d}", at)))
    for j in range(16):
        at = T0 + 15 * j * MINUTE
        nationality = "ERI" if j % 3 == 2 else "SYR"
        events.append((at, T.ADMISSIONS_APPLICATIONS, f.eoi(f"P{j:02d}", at, nationality=nationality)))
        events.append((at + MINUTE, T.ADMISSIONS_APPLICATIONS, f.vetted(f"P{j:02d}", at + MINUTE)))
    events.sort(key=lambda e: e[0])
    return events


def pairs(observer: Observer) -> set[tuple[str, str]]:
    arrival_of = {e["request_id"]: e["arrival_id"]
                  for e in observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested")}
    found = set()
    for d in observer.events(T.OPS_AUDIT, "Decision", decision="paired"):
        for reason in d["reasons"]:
            if reason.startswith("request_") and reason[len("request_"):] in arrival_of:
                found.add((arrival_of[reason[len("request_"):]], d["subject_ref"]))
    return found


async def _crashing_intake(house: House, observer: Observer, expected: int) -> int:
    """Intake killed (SIGKILL) after half of its Redis commits (before it publishes or commits
    its offsets), restarted each time, until it has accepted everything: what it held, decided
    or published before a crash is neither lost nor decided twice. Returns the crashes."""
    stack, crashes = house.stack, 0
    while True:
        env = service_env(stack.bootstrap, stack.redis_url, stack.run_dir / "ready" / "intake", stack.keys_file)
        env.update({"SERVICE_INSTANCE": "intake", "OIOO_FAULTS": "after_commit=0.5",
                    "OIOO_FAULTS_SEED": str(crashes)})
        proc = start_service("intake", env, stack.log_path("intake")).process
        while proc.poll() is None and len(observer.events(T.INTAKE_ACCEPTED)) < expected:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            terminate(proc)
            return crashes
        crashes += 1


async def _run(tmp_path, name: str, flood: bool, crashes: bool = False) -> tuple[set, list[str], int]:
    stack = EmbeddedStack(tmp_path / name)
    await stack.start_async()
    house = House(stack)
    try:
        async with ContractClient(house.bootstrap, house.keyring) as client, \
                Observer(house.bootstrap, (*OUTBOUND_TOPICS, T.INTAKE_ACCEPTED)) as observer:
            events = history()
            if flood:
                await house.stop_service("intake")
            for n, (_, topic, event) in enumerate(events, start=1):
                await client.publish(topic, event)
                if not flood:
                    await observer.wait_for(T.INTAKE_ACCEPTED, count=n)
            crashed = 0
            if crashes:
                crashed = await _crashing_intake(house, observer, len(events))
                await house.start_service("intake")
            elif flood:
                await house.start_service("intake")
            await observer.wait_for(T.INTAKE_ACCEPTED, count=len(events))
            await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=8)
            await observer.quiet(2.0)
            order = {e["event"]["event_id"]: e["event"]["occurred_at"] for e in observer.events(T.INTAKE_ACCEPTED)}
            assert len(order) == len(events)
            return pairs(observer), list(order.values()), crashed
    finally:
        await stack.stop_async()


async def test_a_flood_read_from_every_partition_at_once_pairs_as_the_slow_run(embedded_binaries, tmp_path):
    slow_pairs, _, _ = await _run(tmp_path, "slow", flood=False)
    assert len(slow_pairs) == 8
    flood_pairs, flood_order, _ = await _run(tmp_path, "flood", flood=True)
    times = [datetime.fromisoformat(t) for t in flood_order]
    assert times == sorted(times), "intake handed the flood on out of event-time order"
    assert flood_pairs == slow_pairs
    # the same flood, intake killed between its commit and its publish
    crashed_pairs, crashed_order, crashes = await _run(tmp_path, "crashes", flood=True, crashes=True)
    assert crashes >= 1
    times = [datetime.fromisoformat(t) for t in crashed_order]
    assert times == sorted(times)
    assert crashed_pairs == slow_pairs
