"""Matching wiring: screened events in; audit, alerts, balance and instructions out.

Parse, ask the exchange, persist what changed, publish what it decided. Each outbound id is
derived from the causing event's id and the stable identity of what it is about (the
decision's subject and kind, the alert's kind and subject, the instruction's request or
application, the balance's week), never from its position in the output.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from aiokafka import ConsumerRecord

from services.matching import events as de, wire
from services.matching.exchange import Exchange
from services.matching.loading import Loading
from services.matching.repository import Repository
from services.matching.week import Week
from shared import topics
from shared.event_time import Order, source_order
from shared.events.in_house import read_screened
from shared.ids import derived_id_str
from shared.runtime import BatchContext, Runner, Service
from shared.settings import Settings
from shared.state import QuotaChange, Snapshot
from shared.timeutil import iso_week

PRODUCER = "oioo-matching"
# Enforcement keeps biometrics to itself and strips them; the models still want the field.
NO_BIOMETRIC = "0" * 64
BIOMETRIC_EVENTS = frozenset({"ApplicationVetted", "IllegalWorkingEncounter"})


def _in_house(document: dict) -> dict:
    """An event as enforcement forwarded it, ready to validate: the biometric it stripped stands in."""
    if document.get("event_type") in BIOMETRIC_EVENTS:
        document.setdefault("biometric_id", NO_BIOMETRIC)
    return document


class Matching(Service):
    name = "matching"
    input_topics = (topics.ENFORCEMENT_SCREENED,)
    prompt = True  # between an arrival and its first Decision: short hops (shared/settings.py)
    output_topics = (topics.OPS_AUDIT, topics.OPS_ALERTS, topics.OPS_BALANCE, topics.MATCHING_INSTRUCTIONS)

    def __init__(self, settings: Settings):
        self.settings = settings
        self.exchange = Exchange(settings)
        if settings.enforcement_shards > 1:
            # enforcement's shards' partitions, merged back into one intake's order (shared/shards.py)
            self.order_key = screened_order
            self.marked_inputs = (topics.ENFORCEMENT_SCREENED,)

    def figures(self) -> list[tuple[str, dict[str, str], float]]:
        """This week's pairs and room, open blockers by reason, holds: for the metrics."""
        repo = self.exchange.repo
        if repo.ledger.now is None:
            return []
        name = iso_week(repo.ledger.now)
        week = repo.weeks.get(name) or Week(week=name)
        blockers = Counter(r for c in repo.cases.values() if c.status == "blocked" for r in c.last_reasons)
        return [("oioo_week_pairs_formed", {"week": name}, week.live_pairs),
                ("oioo_week_cap_remaining", {"week": name}, week.room(self.settings.default_cap)),
                *(("oioo_open_blockers", {"reason": r}, n) for r, n in sorted(blockers.items())),
                ("oioo_holds", {}, sum(1 for c in repo.cases.values() if c.on_hold))]

    def restore(self, snapshot: Snapshot) -> None:
        self.exchange.load(snapshot.records, getattr(snapshot, "quota", None))

    def restoring(self) -> "Restore":
        """Chunk by chunk as Redis gives the records: a restart never holds them all at once."""
        return Restore(self.exchange)

    def handle(self, rec: ConsumerRecord, ctx: BatchContext) -> None:
        # An unreadable record raises: the runtime dead-letters it (processing_error).
        screened = read_screened(rec.value, _in_house)  # the envelope and its event, validated once
        event = screened.event
        cause = str(event.event_id)
        if not ctx.first_time(cause, when=event.occurred_at):
            return
        decided = self.exchange.apply(event, screened.screening, cause)
        # an outbound event's time is now; before any event was accepted, the input's own time
        now = self.exchange.repo.ledger.now or event.occurred_at
        self.publish(decided, cause, now, ctx)
        self.persist(ctx)

    def publish(self, decided: list[de.DomainEvent], cause: str, now: datetime, ctx: BatchContext) -> None:
        seen: dict[tuple, int] = {}
        rule_version = self.settings.rule_version
        for d in decided:
            identity = d.identity
            n = seen[identity] = seen.get(identity, 0) + 1
            event_id = derived_id_str(cause, *identity, n) if n > 1 else derived_id_str(cause, *identity)
            if isinstance(d, de.Decided):
                ctx.emit(topics.OPS_AUDIT, d.subject_ref, wire.DECISION(
                    event_id=event_id, occurred_at=now, producer=PRODUCER, subject_ref=d.subject_ref,
                    decision=d.decision, reasons=d.reasons, rule_version=rule_version, caused_by=cause))
            elif isinstance(d, de.Alerted):
                ctx.emit(topics.OPS_ALERTS, d.subject_ref, wire.ALERT(
                    event_id=event_id, occurred_at=now, producer=PRODUCER, alert_id=event_id, **d.data))
            elif isinstance(d, de.BalanceChanged):
                ctx.emit(topics.OPS_BALANCE, d.figures["week"], wire.BALANCE(
                    event_id=event_id, occurred_at=now, producer=PRODUCER, **d.figures))
            elif isinstance(d, de.Instruction):
                ctx.emit(topics.MATCHING_INSTRUCTIONS, d.subject, wire.INSTRUCTION(
                    instruction_id=event_id, occurred_at=now.isoformat(), caused_by=cause, rule_version=rule_version,
                    **d.data))

    def finish(self, ctx: BatchContext) -> None:
        self.persist(ctx, batch_end=True)

    def persist(self, ctx: BatchContext, batch_end: bool = False) -> None:
        """What changed, put into the batch: per event all but the ledger ("meta"), which every
        event moves and only the batch's last state of counts; the ledger at the batch's end.
        (Every change to the ledger touches "meta" in the same event, so its state at the end of
        the batch is its state after the last event that touched it, as written per event.)"""
        ex = self.exchange
        for key, record in ex.repo.take_changes(keep=() if batch_end else ("meta",)).items():
            if record is None:
                ctx.changes.delete(key)
            else:
                ctx.changes.put(key, record)
        for week, delta in ex.quota.items():
            prior = ctx.changes.quota.get(week)
            ctx.changes.quota[week] = QuotaChange(
                week=week, delta_live=delta.delta + (prior.delta_live if prior else 0),
                cap=ex.repo.week(week).cap_or(self.settings.default_cap),
                check=delta.formed or bool(prior and prior.check))
        ex.quota.clear()


class Restore:
    """Matching's state from its stored records, a chunk at a time (shared/state.Restoring): a
    new repository, which the exchange takes once every record is in."""

    def __init__(self, exchange: Exchange):
        self._exchange = exchange
        self._loading = Loading(Repository())

    def add(self, records: Mapping[str, dict]) -> None:
        self._loading.add(records)

    def finish(self, snapshot: Snapshot) -> None:
        self._exchange.adopt(self._loading.finish(snapshot.quota))


def screened_order(rec: ConsumerRecord) -> Order:
    return source_order(rec.value)


def build(settings: Settings | None = None) -> Runner:
    settings = settings or Settings.from_env()
    return Runner(Matching(settings), settings)
