"""Handlers of the operators' controls: the weekly cap, pause and resume, and the clock."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from services.matching import rules
from services.matching.week import week_of
from shared.events import inbound as ev
from shared.events.internal import Screening

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def cap_set(x: "Exchange", e: ev.WeeklyCapSet, s: Screening) -> None:
    week = x.repo.week(e.week)
    before = week.set_cap(e.cap, x.settings.default_cap)
    x.week_changed(week.week)
    x.decide(e.week, "cap_set", rules.cap_change(before, e.cap, week.live_pairs))


def set_paused(x: "Exchange", paused: bool) -> None:
    """"AdmissionsPaused stops new pairs only: offers for executed returns still go out.\""""
    ledger = x.repo.ledger
    if ledger.paused == paused:
        x.decide("scheme", "ignored", [f"already_{'paused' if paused else 'running'}"])
        return
    ledger.paused = paused
    x.repo.touch("meta")
    x.week_changed(week_of(x.now))
    x.decide("scheme", "admissions_paused" if paused else "admissions_resumed", ["operator_control"])


HANDLERS: dict[type, Callable] = {
    ev.WeeklyCapSet: cap_set,
    ev.AdmissionsPaused: lambda x, e, s: set_paused(x, True),
    ev.AdmissionsResumed: lambda x, e, s: set_paused(x, False),
    ev.ClockTick: lambda x, e, s: None,
}
