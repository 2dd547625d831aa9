"""The batch loop of the runner (shared/runtime.py): decide a batch, commit it, relay it.

`BatchLoop._process` decides a batch of input records through the service into one
`BatchContext`, finishes it, and commits it with the one Lua script; then the relay publishes
the outbox. A record that makes the service raise is dead-lettered alone and the batch decided
again without it; a state that moved under us is recovered; a commit over the weekly cap is
decided again from Redis's counters; a lease that vanished is held again and the same batch
committed. The runner (its lifecycle, lease and recovery) mixes this in and provides the state
it reads: the service, store, lease, relay, metrics, settings, version, seen ids and offsets.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone

from aiokafka import ConsumerRecord

from shared import faults, metrics, topics
from shared.backoff import until_done
from shared.batch import JSON_HEADERS, BatchContext, Outgoing, encode_outbox, trace_of
from shared.dead_letters import dead_letter, record_place
from shared.events.outbound import Alert
from shared.ids import derived_id
from shared.shards import MARK
from shared.store import CapExceeded, Fenced, StaleState
from shared.state import Commit

log = logging.getLogger("oioo.runtime")

EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
YIELD_EVERY = 200  # records decided between two turns of the event loop (the lease keeper, health)


def time_to_forget(high: float, forgot_at: float, remembered: int, kept: int) -> bool:
    """Whether memory should forget the event ids the commit script forgot (those below the
    horizon): at most once a day of event time, and only once it remembers a quarter more ids
    than it kept last time. Forgetting walks every id, so in a replay, where a batch can span
    days of event time, forgetting after every batch cost each service 3-6 % of its CPU; this
    way each id is walked a bounded number of times, and memory holds at most a quarter more
    than the horizon's ids (only ever more than Redis, never fewer: duplicates stay dropped)."""
    return high - forgot_at > 86400 and remembered > kept + kept // 4


class _Poison(Exception):
    def __init__(self, place: str, detail: str):
        super().__init__(detail)
        self.place, self.detail = place, detail



class BatchLoop:
    async def _process(self, records: list[ConsumerRecord], replay: bool, mark: bool = False) -> None:
        """`mark`: this shard has read every input to its end once the batch is decided: a MARK
        goes out after what it accepted (shared/shards.py)."""
        poisoned: dict[str, str] = {}
        refusals = 0
        committed: tuple[int, list[Outgoing]] | None = None
        ctx: BatchContext | None = None  # a batch decided and not yet committed
        while True:
            if ctx is None:
                if self._must_recover and not replay:
                    await self._recover()
                elif self._lease_returned and not replay:
                    await self._recover_unless_current()
                ctx = BatchContext(self.seen, replay=replay, high=self.high)
                try:
                    await self._decide(records, ctx, poisoned)
                except _Poison as poison:
                    poisoned[poison.place] = poison.detail
                    log.critical("%s: %s raised %s; dead-lettering it and deciding the batch again",
                                 self.instance, poison.place, poison.detail)
                    await self._reload()
                    ctx = None
                    continue
                self.service.finish(ctx)  # only a batch decided to its end: a poisoned attempt is dropped
                if mark:
                    ctx.out.append(Outgoing(self.service.sharded_output, None, MARK, dict(JSON_HEADERS)))
                if ctx.changes.empty() and not ctx.out:
                    break
                if not replay:
                    ctx.out[:0] = [Outgoing(topics.OPS_ALERTS, a.subject_ref, a.to_json()) for a in self._alerts]
            try:
                committed = await self._commit(ctx)
            except StaleState as stale:
                log.warning("%s: state version moved to %s under us; recovering", self.instance, stale.current)
                await self._recover()
                ctx = None
                continue
            except CapExceeded as refused:
                refusals += 1
                self._cap_refused(refused, records[0])
                if refusals > 3:
                    raise
                await self._reload()
                ctx = None
                continue
            except Fenced:
                # The lease vanished (it expired while Redis stalled, or Redis was emptied): take
                # it again, or notice the keeper already did, and commit the same batch again. The
                # script's version check refuses it (StaleState: recover) if anyone wrote meanwhile.
                if await self.lease.hold_again():
                    log.warning("%s: the lease had vanished; held again, committing the batch again", self.instance)
                    continue
                self._lost_lease("the commit was fenced")
            self._alerts.clear()
            break
        if not replay:
            await self.relay.flush(committed)

    async def _decide(self, records: list[ConsumerRecord], ctx: BatchContext, poisoned: dict[str, str]) -> None:
        """Hand the batch to the service, letting the loop run now and then: the lease keeper
        must renew within the lease's TTL however long a large batch takes on a busy machine."""
        for n, rec in enumerate(records, start=1):
            self._take(rec, ctx, poisoned)
            if not n % YIELD_EVERY:
                await asyncio.sleep(0)

    def _take(self, rec: ConsumerRecord, ctx: BatchContext, poisoned: dict[str, str]) -> None:
        """Hand one record to the service unless its offset was consumed already, and track it."""
        tp = f"{rec.topic}:{rec.partition}"
        if rec.offset < self.offsets.get(tp, 0) or rec.offset < ctx.changes.offsets.get(tp, 0):
            return
        if rec.value == MARK and rec.topic in self.service.marked_inputs:
            ctx.changes.offsets[tp] = rec.offset + 1  # a shard's progress, not an event (shared/shards.py)
            return
        place = record_place(rec.topic, rec.partition, rec.offset)
        ctx.trace = trace_of(rec, place)
        if place in poisoned:
            self._dead_letter(rec, poisoned[place], ctx)
        else:
            try:
                self.service.handle(rec, ctx)
            except Exception as exc:  # noqa: BLE001 - any failure on one record is that record's
                raise _Poison(place, f"{self.service.name} raised {exc.__class__.__name__}") from exc
        ctx.changes.offsets[tp] = rec.offset + 1

    def _dead_letter(self, rec: ConsumerRecord, detail: str, ctx: BatchContext) -> None:
        letter, alert = dead_letter(topic=rec.topic, partition=rec.partition, offset=rec.offset, raw=rec.value,
                                    code="processing_error", detail=detail, when=self._now(),
                                    producer=self.producer_name)
        ctx.emit(topics.OPS_DEAD_LETTERS, rec.key.decode("utf-8", "replace") if rec.key else None, letter)
        ctx.emit(topics.OPS_ALERTS, alert.subject_ref, alert)

    def _cap_refused(self, refused: CapExceeded, first: ConsumerRecord) -> None:
        place = record_place(first.topic, first.partition, first.offset)
        log.critical("%s: the commit was refused over the weekly cap (%s); deciding again from Redis's counters",
                     self.instance, refused)
        self._alerts.append(Alert(
            event_id=derived_id(place, "cap-refused", refused.week), occurred_at=self._now(),
            producer=self.producer_name, alert_id=str(derived_id(place, "cap-refused-alert", refused.week)),
            severity="critical", kind="cap_refused", subject_ref=refused.week,
            message=f"Redis refused pairs over the cap of week {refused.week} ({refused.live} > {refused.cap}); "
                    "the batch was decided again from the quota counters"))

    def _now(self) -> datetime:
        now = getattr(self.service, "now", None)
        if isinstance(now, datetime):
            return now
        return datetime.fromtimestamp(self.high, tz=timezone.utc) if self.high else EPOCH

    async def _commit(self, ctx: BatchContext) -> tuple[int, list[Outgoing]] | None:
        """Commit the batch; returns (version, messages) when it put an entry in the outbox."""
        horizon = self.settings.dedupe_horizon_days * 86400
        extra = Commit(seen_score=ctx.high, seen_floor=(ctx.high - horizon) if ctx.high else None,
                       outbox=encode_outbox(ctx.out) if ctx.out and not ctx.replay else None,
                       check_cap=not ctx.replay)
        faults.point("before_commit")
        with self.metrics.commit_seconds.time():
            self.version = await until_done(
                "redis (commit)", lambda: self.store.commit(self.version, self.lease.value or "", ctx.changes, extra),
                self._redis_outage)
        for event_id in ctx.changes.seen:
            self.seen[event_id] = ctx.changes.seen_at.get(event_id, ctx.high)
        if extra.seen_floor is not None and time_to_forget(ctx.high, self._pruned_at, len(self.seen), self._kept):
            # the commit script forgot the ids below the horizon: so does memory, now and then
            self.seen = {k: v for k, v in self.seen.items() if v >= extra.seen_floor}
            self._pruned_at, self._kept = ctx.high, len(self.seen)
        self.high = max(self.high, ctx.high)
        self.offsets.update(ctx.changes.offsets)
        if not ctx.replay:
            self.metrics.records.inc(len(ctx.changes.seen))
            for o in ctx.out:
                if o.topic == topics.OPS_DEAD_LETTERS:
                    self.metrics.dead_letters.labels(code=json.loads(o.value)["error_code"]).inc()
            figures = getattr(self.service, "figures", None)
            if figures is not None and time.monotonic() >= self._figures_at:  # metrics only
                started = time.monotonic()
                metrics.set_figures(figures())
                # a service may count its whole state (matching: every open case); on a large
                # state that stalls a batch, so it is done at most 0.5% of the time
                self._figures_at = started + max(1.0, 200 * (time.monotonic() - started))
        faults.point("after_commit")
        return (self.version, ctx.out) if extra.outbox else None
