"""The exchange: matching's unit of work. It loads the aggregates (through the repository),
applies one event at a time, and collects what was decided as typed domain events; it knows
nothing of Kafka or Redis.

Per event, as the contract orders it: move now forward; fire every deadline now has passed
(due time, then kind, then id); apply the event; make one matching pass over the ready queues
in rule order; publish the weekly figures that changed (each count in the week of the
event's own time).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from services.matching import admission_side, controls, deferred, movements, pairing, return_side, rules
from services.matching.case import Case
from services.matching.deadlines import Deadlines
from services.matching.events import Alerted, BalanceChanged, DayBegan, Decided, DomainEvent, Instruction
from services.matching.pair import Pair
from services.matching.queues import ReturnQueue, SeatQueue, SortedQueue
from services.matching.repository import Repository
from services.matching.seat import Seat
from services.matching.week import week_of
from shared.events import inbound as ev
from shared.events.internal import Screening
from shared.settings import Settings

Handler = Callable[["Exchange", ev.Event, Screening], None]
HANDLERS: dict[type, Handler] = {
    **return_side.HANDLERS, **admission_side.HANDLERS, **movements.HANDLERS, **controls.HANDLERS,
}
DEADLINES: dict[str, Callable[["Exchange", str, datetime], None]] = {
    "expire": deferred.expire_deferred, "hold_limit": movements.hold_limit, "lapse": movements.lapse,
    "overdue": movements.overdue, "window": return_side.window_closes,
}


@dataclass
class QuotaDelta:
    delta: int = 0
    formed: bool = False


class Exchange:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.priority = frozenset(settings.priority_nationalities)
        self.repo = Repository()
        self.deadlines = Deadlines()
        self.returns = ReturnQueue()
        self.ready_seats = SeatQueue()
        self.owed: SortedQueue[str] = SortedQueue()  # executed returns owed a seat, by pair order
        self.awaiting_offer: set[str] = set()
        self.quota: dict[str, QuotaDelta] = {}  # per batch, taken by the wiring
        self.cause = ""
        self.quiet = False  # replaying deferred casework: the first assessment speaks for it
        self._out: list[DomainEvent] = []
        self._weeks: set[str] = set()

    # ---- loading -------------------------------------------------------------------------
    def load(self, records: Mapping[str, dict], quota: dict[str, dict[str, int]] | None = None) -> None:
        repo = Repository()
        repo.load(records, quota)
        self.adopt(repo)

    def adopt(self, repo: Repository) -> None:
        """Take a loaded repository (services/matching/loading.py): the queues and the schedule
        are rebuilt from it."""
        self.__init__(self.settings)
        self.repo = repo
        for case in list(self.repo.cases.values()):
            self.case_changed(case, touch=False)
        for seat in list(self.repo.seats.values()):
            self.seat_changed(seat, touch=False)
        for pair in list(self.repo.pairs.values()):
            self.pair_changed(pair, touch=False)
            for due, kind in pair.reply_deadlines():
                self.deadlines.at(due, kind, pair.request_id)
            if pair.open_request and self.repo.cases[pair.arrival_id].on_hold:
                landed_at = self.repo.cases[pair.arrival_id].landed_at
                self.deadlines.at(rules.hold_limit(landed_at), "hold_limit", pair.request_id)
        for key, items in self.repo.pending.items():
            for item in items:
                self.deadlines.at(rules.deferral_expires(datetime.fromisoformat(item["event"]["occurred_at"])),
                                  "expire", key)

    # ---- the way in ----------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        assert self.repo.ledger.now is not None
        return self.repo.ledger.now

    def apply(self, event: ev.Event, screening: Screening, cause: str | None = None) -> list[DomainEvent]:
        """`cause`: the event's id as a string, when the caller has it already."""
        self._out, self._weeks, self.cause = [], set(), cause or str(event.event_id)
        before = self.repo.ledger.now
        if self.repo.ledger.advance(event.occurred_at):
            self.repo.touch("meta")
            day = self.now.astimezone(timezone.utc).date()
            if before is None or before.astimezone(timezone.utc).date() != day:
                self._out.append(DayBegan(day=day.isoformat()))
            for due, kind, ident in self.deadlines.due(self.now):
                DEADLINES[kind](self, ident, due)
        mark = len(self._out)
        self.dispatch(event, screening)
        if not isinstance(event, ev.ClockTick) and not any(isinstance(o, Decided) for o in self._out[mark:]):
            self.decide(ev.subject_of(event), "recorded", ["no_change_in_standing"])
        pairing.match(self)
        self._check_imbalance()
        for week in sorted(self._weeks):
            self._out.append(BalanceChanged(self.figures(week)))
        return self._out

    def dispatch(self, event: ev.Event, screening: Screening) -> None:
        HANDLERS[type(event)](self, event, screening)

    def figures(self, week: str) -> dict:
        ledger = self.repo.ledger
        return {**self.repo.week(week).figures(self.settings.default_cap),
                "cumulative_returns_executed": ledger.cumulative_returns_executed,
                "cumulative_admissions_offered": ledger.cumulative_admissions_offered,
                "admissions_paused": ledger.paused}

    # ---- what was decided ----------------------------------------------------------------
    def decide(self, subject: str, decision: str, reasons: list[str] | tuple[str, ...]) -> None:
        self._out.append(Decided(subject, decision, list(reasons)))

    def alert(self, kind: str, severity: str, subject: str, message: str) -> None:
        self._out.append(Alerted(kind, severity, subject, message))

    def order(self, instruction: Instruction) -> None:
        self._out.append(instruction)

    def count(self, name: str, at: datetime, n: int = 1) -> None:
        """A figure of the week `at` falls in: the event's own time, or a deadline's."""
        week = self.repo.week(week_of(at))
        week.count(name, n)
        self.week_changed(week.week)

    def week_changed(self, week: str) -> None:
        self.repo.touch(f"week:{week}")
        self._weeks.add(week)

    def live_pairs_changed(self, week: str, delta: int, formed: bool = False) -> None:
        q = self.quota.setdefault(week, QuotaDelta())
        q.delta += delta
        q.formed = q.formed or formed
        self.week_changed(week)

    # ---- keeping the queues and the schedule in step with the aggregates ------------------
    def case_changed(self, case: Case, touch: bool = True) -> None:
        if touch:
            self.repo.touch(f"case:{case.arrival_id}")
        if case.ready:
            self.returns.put_case(rules.ReadyCase(case.arrival_id, case.landed_at, case.reentrant))
        else:
            self.returns.remove(case.arrival_id)
        if case.queued:
            self.deadlines.at(rules.request_window_closes(case.landed_at, self.settings.request_window_days), "window",
                              case.arrival_id)
        self.repo.retire_case(case)

    def seat_changed(self, seat: Seat, touch: bool = True) -> None:
        if touch:
            self.repo.touch(f"seat:{seat.application_id}")
        ref = seat.family_group_ref
        if ref and ref in self.repo.families:
            units = self.repo.families[ref].units(self.repo.family(seat), self.priority)
            self.ready_seats.set_group("f:" + ref, units)
        else:
            unit = rules.Unit((seat.application_id,), seat.nationality in self.priority, seat.submitted_at, seat.head)
            self.ready_seats.set_group("s:" + seat.application_id, [unit] if seat.ready else [])
            self.repo.retire_seat(seat)

    def pair_changed(self, pair: Pair, touch: bool = True) -> None:
        if touch:
            self.repo.touch(f"pair:{pair.request_id}")
        if pair.owes_seat:
            self.owed.put(pair.request_id, (pair.seq, pair.request_id), pair.request_id)
        else:
            self.owed.remove(pair.request_id)
        if pair.awaits_offer:
            self.awaiting_offer.add(pair.request_id)
        else:
            self.awaiting_offer.discard(pair.request_id)
        self.repo.end_pair(pair)

    def _check_imbalance(self) -> None:
        ledger = self.repo.ledger
        changed = ledger.imbalance_changed(self.settings.imbalance_margin)
        if changed is not None:
            self.repo.touch("meta")
        if changed:
            self.alert("imbalance", "warning", "scheme",
                       f"Returns executed ({ledger.cumulative_returns_executed}) and admissions offered "
                       f"({ledger.cumulative_admissions_offered}) differ by more than "
                       f"{self.settings.imbalance_margin}")

