"""The runner's state (shared/runtime.py): load it from Redis, then replay from the log what the
group's committed offsets cover and Redis does not (shared/catch_up.py), publishing nothing.

A mixin, as shared/batch_loop.py is: the runner provides the service, store, relay, catch-up,
lease flags and outage callbacks it reads, and `_process` (the batch loop) for the replay.
"""
from __future__ import annotations

import logging

from shared import topics
from shared.backoff import until_done
from shared.catch_up import LogShort
from shared.events.outbound import Alert
from shared.ids import derived_id
from shared.state import Restoring, Snapshot

log = logging.getLogger("oioo.runtime")


class Incomplete(Exception):
    """The log ends before the committed offsets: the state cannot be rebuilt from it."""


class Recovery:
    def _adopt(self, snap: Snapshot, restoring: Restoring) -> None:
        self.version = snap.version
        self.relay.forget()
        self.seen = dict(snap.seen) if isinstance(snap.seen, dict) else dict.fromkeys(snap.seen, 0.0)
        self.high = max(self.seen.values(), default=0.0)
        self._kept = len(self.seen)
        self.offsets = dict(snap.offsets)
        restoring.finish(snap)
        self.loaded = True

    async def _reload(self) -> Snapshot:
        """The state from Redis, the service's rebuilt from its records chunk by chunk as they
        are read (a read that starts over starts a new rebuild)."""
        latest: list[Restoring] = []

        def restoring() -> Restoring:
            latest[:] = [self.service.restoring()]
            return latest[0]

        snap = await until_done("redis (load)", lambda: self.store.load(restoring), self._redis_outage)
        self._adopt(snap, latest[0])
        return snap

    async def _recover_unless_current(self) -> None:
        """The lease was held again after it vanished: nobody else held it meanwhile if Redis is
        still at our version, and then the state in memory is Redis's (the last batch committed)."""
        current = await until_done("redis (version)", self.store.current_version, self._redis_outage)
        if self.loaded and current == self.version and current:
            self._lease_returned = False
            log.warning("%s: still at version %s after the lease came back; nothing to reload",
                        self.instance, current)
            return
        await self._recover()

    async def _recover(self) -> None:
        """Load what Redis holds, then replay what Kafka's committed offsets say is missing."""
        self._must_recover = self._lease_returned = False
        snap = await self._reload()
        log.info("%s: state loaded at version %s", self.instance, snap.version)
        await self._catch_up()

    async def _catch_up(self) -> None:
        try:
            await self.catch_up.run(self.offsets, lambda chunk: self._process(chunk, replay=True))
        except LogShort as short:
            await self._incomplete(short.where)
        log.warning("%s: caught up at version %s", self.instance, self.version)

    async def _incomplete(self, where: str) -> None:
        self.incomplete = True
        log.critical("%s: cannot rebuild: the log does not hold what the committed offsets cover (%s)",
                     self.instance, where)
        subject = f"{self.service.name}:rebuild"
        alert = Alert(event_id=derived_id(subject, where), occurred_at=self._now(), producer=self.producer_name,
                      alert_id=str(derived_id(subject, where, "alert")), severity="critical",
                      kind="rebuild_incomplete", subject_ref=subject,
                      message=f"{self.service.name} cannot rebuild its state: the log ends before the "
                              f"committed offsets ({where}); restore Redis or the topics, then restart it")
        await until_done("broker (alert)", lambda: self.relay.publish([(topics.OPS_ALERTS, subject, alert.to_json(), None)]),
                         self._broker_outage)
        raise Incomplete(where)
