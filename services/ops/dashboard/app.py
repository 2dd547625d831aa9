"""The dashboard's server: keeps the ops figures in memory and pushes them to every open page.

One task reads the ops topics from the beginning and folds each record into a `Board`; another
asks every few seconds how far behind each service's consumer group is and whether each
instance is ready. Every open page holds one server-sent-event stream and receives the whole
state again whenever something changed (coalesced, a few times a second at most).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.ops import health
from services.ops.figures import Board
from services.ops.stack_env import health_urls
from services.ops.topics_reader import follow
from shared import topics as T

log = logging.getLogger("oioo.dashboard")
STATIC = Path(__file__).parent / "static"
OPS_TOPICS = (T.OPS_BALANCE, T.OPS_ALERTS, T.OPS_AUDIT, T.OPS_DEAD_LETTERS)
SERVICES_EVERY = 3.0
PUSH_EVERY = 0.3


class Live:
    """The in-memory state and a way to wait for it to change."""

    def __init__(self, env: dict[str, str]):
        self.bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.groups = health.groups_for(env)
        self.health_urls = health_urls(env)
        self.redis_url = env.get("REDIS_URL") or None
        self.redis = "not configured"
        self.board = Board()
        self.lag: list[dict] = []
        self.readiness: list[dict] = []
        self.feed = "starting"
        self.changes = 0
        self._changed = asyncio.Condition()

    async def touch(self) -> None:
        self.changes += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait_change(self, seen: int, timeout: float) -> int:
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.changes != seen), timeout)
        return self.changes

    def state(self) -> dict:
        return {**self.board.snapshot(), "services": self.lag, "readiness": self.readiness, "redis": self.redis,
                "feed": self.feed,
                "as_of": datetime.now(timezone.utc).strftime("%H:%M:%S UTC")}

    async def read_topics(self) -> None:
        delay = 1.0
        while True:
            try:
                async for batch in follow(self.bootstrap, OPS_TOPICS):
                    if self.feed != "live":
                        self.feed = "live"
                        await self.touch()
                    for rec in batch:
                        self.board.take(rec.topic, rec.doc)
                    if batch:
                        await self.touch()
                    delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: say so on the page, wait, read again from the start
                log.warning("ops topics unreadable (%s); retrying in %.0fs", exc.__class__.__name__, delay)
                self.feed = "broker unreachable"
                self.board = Board()
                await self.touch()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def watch_services(self) -> None:
        probe: health.LagProbe | None = None
        while True:
            try:
                if probe is None:
                    probe = await health.LagProbe(self.bootstrap, self.groups).start()
                lag = [{**asdict(g), "lag": g.lag} for g in await probe()]
            except asyncio.CancelledError:
                if probe is not None:
                    await probe.stop()
                raise
            except Exception as exc:  # noqa: BLE001 - shown as unknown, tried again with a new probe
                log.warning("consumer lag unavailable (%s)", exc.__class__.__name__)
                lag = []
                if probe is not None:
                    await probe.stop()
                    probe = None
            ready = [asdict(r) for r in await health.readiness(self.health_urls)]
            redis = await health.redis_answers(self.redis_url) if self.redis_url else "not configured"
            if (lag, ready, redis) != (self.lag, self.readiness, self.redis):
                self.lag, self.readiness, self.redis = lag, ready, redis
                await self.touch()
            await asyncio.sleep(SERVICES_EVERY)


def build(env: dict[str, str]) -> Starlette:
    live = Live(env)

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def state(request: Request):
        return JSONResponse(live.state())

    async def healthz(request: Request):
        return PlainTextResponse("ok")

    async def events(request: Request):
        async def stream():
            seen = -1
            while True:
                if await request.is_disconnected():
                    return
                if live.changes != seen:
                    seen = live.changes
                    yield {"event": "state", "data": json.dumps(live.state())}
                    await asyncio.sleep(PUSH_EVERY)  # coalesce bursts (a replay from the beginning)
                seen_before = seen
                await live.wait_change(seen_before, 10.0)
        return EventSourceResponse(stream(), ping=15)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        tasks = [asyncio.create_task(live.read_topics(), name="ops-topics"),
                 asyncio.create_task(live.watch_services(), name="services")]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    app = Starlette(routes=[
        Route("/", page), Route("/api/state", state), Route("/events", events), Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.live = live
    return app
