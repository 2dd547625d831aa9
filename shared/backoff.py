"""Outages (broker or Redis unreachable) are waited out, never hot-looped: capped exponential
backoff with full jitter, and one log line when the outage starts and one when it ends."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")
log = logging.getLogger("oioo.backoff")


def outage_errors() -> tuple[type[BaseException], ...]:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError,
            KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


def delays(base: float = 0.1, cap: float = 10.0, rng: random.Random | None = None):
    """0..base, 0..2*base, ... capped at `cap`: full jitter spreads the retries of many clients."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield rng.uniform(0, min(cap, base * (2 ** attempt)))
        attempt = min(attempt + 1, 30)


async def until_done(what: str, step: Callable[[], Awaitable[T]],
                     on_outage: Callable[[bool], None] | None = None, cap: float = 10.0) -> T:
    """Run `step` until it does not fail with an outage error; other errors propagate."""
    errors = outage_errors()
    waits = delays(cap=cap)
    failing = False
    while True:
        try:
            result = await step()
        except errors as exc:
            if not failing:
                log.warning("%s: outage (%s); retrying with backoff", what, exc.__class__.__name__)
                failing = True
                if on_outage:
                    on_outage(True)
            await asyncio.sleep(next(waits))
            continue
        if failing:
            log.warning("%s: recovered", what)
            if on_outage:
                on_outage(False)
        return result
