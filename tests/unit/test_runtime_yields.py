"""A large batch lets the event loop run now and then, so the lease keeper renews within the TTL
however long the batch takes (a batch longer than the lease used to lose it)."""
from __future__ import annotations

import asyncio
import time

from aiokafka import ConsumerRecord

from shared.batch import BatchContext, Service
from shared.batch_loop import YIELD_EVERY
from shared.runtime import Runner
from shared.settings import Settings


class Slow(Service):
    name = "slow"
    input_topics = ("t",)

    def restore(self, snapshot) -> None:
        pass

    def handle(self, record, ctx) -> None:
        time.sleep(0.0005)  # 2,000 records: one second with the loop held, were it never let go


def _records(n: int) -> list[ConsumerRecord]:
    return [ConsumerRecord("t", 0, i, 0, 0, None, b"{}", None, 0, 2, []) for i in range(n)]


async def test_a_long_batch_lets_the_lease_keeper_run():
    runner = Runner(Slow(), Settings())
    turns = 0

    async def keeper() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.create_task(keeper())
    await asyncio.sleep(0)
    before = turns
    await runner._decide(_records(2000), BatchContext({}, replay=False, high=0.0), {})
    task.cancel()
    assert YIELD_EVERY <= 400 and turns - before >= 2000 // YIELD_EVERY - 1
