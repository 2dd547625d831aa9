"""Replaying matching's recorded input offline: a fresh `Matching` and a fresh `Transfer`, no
broker, no Redis, nothing of the running system touched.

Each input record is one batch, as the runtime could have cut it: a `BatchContext` over the
event ids seen so far (the runtime's duplicate filter, with its horizon of event time), the
service's changes kept as Redis would keep them. (Only a duplicate sent again about the
horizon's length later could be judged differently than under the runtime's own batch cuts.) A
record whose handling raises is set aside as the runtime dead-letters it (`processing_error`):
the service is restored from the records kept before it and goes on. Matching's instructions go
through transfer in the order matching emitted them, as transfer reads its one-partition input
topic; the arrivals' particulars from intake (transfer's other input) go in beside them by event
time: those of arrivals up to an instruction's time before it. A request whose particulars are
not there yet waits for them, as it does in transfer, and goes when they come; the ids and
contents are the same in either order. Particulars are kept 30 days (personal data): a request
about an arrival whose particulars are no longer in the history is written from a stand-in
(PARTICULARS_GONE in every personal field), so that transfer still acts as it did; the baseline
check compares such requests without those fields.

A `Scenario` is the rules and settings a run is under. The baseline is the settings in force
(`Settings.from_env()`, the environment the services run with); an alternative changes some of
them. A cap given for a week overrides every WeeklyCapSet in the log for that week (the
operator's control still happens, with the other cap), and holds from the first record.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property

from services.matching.app import Matching
from services.ops.whatif_history import Logged
from services.transfer.app import Transfer
from shared import topics as T
from shared.events.internal import ArrivalParticulars, Particulars, ScreenedEvent
from shared.runtime import BatchContext, Service
from shared.settings import Settings
from shared.state import Snapshot


@dataclass(frozen=True)
class Scenario:
    settings: Settings
    cap: int | None = None  # every week's cap
    cap_weeks: dict[str, int] = field(default_factory=dict)  # a week's cap (wins over `cap`)

    def cap_for(self, week: str) -> int | None:
        return self.cap_weeks.get(week, self.cap)

    @classmethod
    def alternative(cls, base: Settings, *, cap: int | None = None, cap_weeks: dict[str, int] | None = None,
                    priority: tuple[str, ...] | None = None, scheme_end: date | None = None,
                    window_days: int | None = None) -> "Scenario":
        changed: dict = {}
        if cap is not None:
            changed["default_cap"] = cap
        if priority is not None:
            changed["priority_nationalities"] = priority
        if scheme_end is not None:
            changed["scheme_end"] = scheme_end
        if window_days is not None:
            changed["request_window_days"] = window_days
        return cls(replace(base, **changed), cap, dict(cap_weeks or {}))

    def describe(self, base: Settings) -> list[str]:
        """What differs from `base`, in words, for the output."""
        s, said = self.settings, []
        if self.cap is not None:
            said.append(f"cap {self.cap} every week (was {base.default_cap} unless set; WeeklyCapSet overridden)")
        for week, cap in sorted(self.cap_weeks.items()):
            said.append(f"cap {cap} in {week}")
        if s.priority_nationalities != base.priority_nationalities:
            said.append(f"priority {','.join(s.priority_nationalities) or 'none'} "
                        f"(was {','.join(base.priority_nationalities) or 'none'})")
        if s.scheme_end != base.scheme_end:
            said.append(f"scheme end {s.scheme_end} (was {base.scheme_end})")
        if s.request_window_days != base.request_window_days:
            said.append(f"request window {s.request_window_days} days (was {base.request_window_days})")
        return said


@dataclass(frozen=True)
class Out:
    """One event a service published: where, and which input record (by index) caused it."""

    topic: str
    key: str | None
    value: bytes
    cause: int

    @cached_property  # read by the diff several times
    def doc(self) -> dict:
        return json.loads(self.value)


@dataclass
class Run:
    scenario: Scenario
    outputs: list[Out] = field(default_factory=list)
    set_aside: list[tuple[str, int]] = field(default_factory=list)  # (service, input index) that raised
    without_particulars: set[str] = field(default_factory=set)  # ReturnRequested ids written from a stand-in


PARTICULARS_GONE = "(not in the history)"
PERSONAL_FIELDS = tuple(Particulars.model_fields)


def stand_in(arrival_id: str, when: str) -> bytes:
    """Particulars for an arrival whose own are gone (retention): nothing of the person."""
    return ArrivalParticulars(arrival_id=arrival_id, occurred_at=when, family_name=PARTICULARS_GONE,
                              given_names=PARTICULARS_GONE, date_of_birth=None, nationality="XXX", landed_at=when,
                              landing_point=PARTICULARS_GONE, vessel_ref=PARTICULARS_GONE).model_dump_json().encode()


@dataclass(frozen=True)
class _Rec:
    """The part of a consumer record a service reads."""

    value: bytes
    topic: str
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


class _Kept:
    """One service and what Redis would hold for it: records, the duplicate filter (event id ->
    the event time it was seen at, forgotten below the horizon as the runtime forgets it),
    quota counters."""

    def __init__(self, make: Callable[[], Service], horizon_days: int,
                 after_restore: Callable[[Service], None] = lambda s: None):
        self.make, self.after_restore = make, after_restore
        self.horizon = horizon_days * 86400
        self.service = make()
        after_restore(self.service)
        self.records: dict[str, str] = {}
        self.seen: dict[str, float] = {}
        self.high = 0.0
        self.quota: dict[str, dict[str, int]] = {}

    def handle(self, rec: _Rec) -> list | None:
        ctx = BatchContext(self.seen, high=self.high)
        try:
            self.service.handle(rec, ctx)
            self.service.finish(ctx)  # each record is its own batch, as the runtime finishes one
        except Exception:  # noqa: BLE001 - the runtime dead-letters any exception, and so do we
            self.restore()
            return None
        changes = ctx.changes
        self.records.update(changes.upserts)
        for key in changes.deletes:
            self.records.pop(key, None)
        for event_id in changes.seen:
            self.seen[event_id] = ctx.high
        if ctx.high - self.high > 86400 and ctx.high:  # as shared.runtime prunes its filter
            self.seen = {k: v for k, v in self.seen.items() if v >= ctx.high - self.horizon}
        self.high = max(self.high, ctx.high)
        for q in changes.quota.values():
            counters = self.quota.setdefault(q.week, {"live": 0})
            counters["live"] += q.delta_live
            counters["cap"] = q.cap
        return ctx.out

    def restore(self) -> None:
        self.service = self.make()
        self.service.restore(Snapshot(version=1, records={k: json.loads(v) for k, v in self.records.items()},
                                      seen=dict(self.seen), offsets={},
                                      quota={w: dict(c) for w, c in self.quota.items()}))
        self.after_restore(self.service)


def _preset_caps(scenario: Scenario) -> Callable[[Service], None]:
    def preset(service: Service) -> None:
        repo = service.exchange.repo  # type: ignore[attr-defined]
        for week, cap in scenario.cap_weeks.items():
            if repo.week(week).cap != cap:
                repo.week(week).cap = cap
                repo.touch(f"week:{week}")
    return preset


def _override_cap(value: bytes, scenario: Scenario) -> bytes:
    """The same WeeklyCapSet (same id, same time) with the scenario's cap for its week."""
    if not (scenario.cap is not None or scenario.cap_weeks) or b'"WeeklyCapSet"' not in value:
        return value
    screened = ScreenedEvent.model_validate_json(value)
    event = dict(screened.event)
    cap = scenario.cap_for(str(event.get("week")))
    if event.get("event_type") != "WeeklyCapSet" or cap is None:
        return value
    event["cap"] = cap
    return screened.model_copy(update={"event": event}).model_dump_json().encode()


def _field(value: bytes, name: str):
    try:
        return json.loads(value).get(name)
    except (ValueError, AttributeError):
        return None


def _time(value: bytes) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(value)["occurred_at"])
    except (ValueError, KeyError, TypeError):
        return None  # transfer itself will refuse it (set aside)


def replay(inputs: list[Logged], scenario: Scenario, progress: Callable[[int], None] | None = None,
           particulars: list[Logged] = ()) -> Run:
    """Matching's recorded input through a fresh Matching, its instructions (and the arrivals'
    `particulars`) through a fresh Transfer, under `scenario`. `progress(n)` is told after each
    record of `inputs`."""
    run = Run(scenario)
    settings = scenario.settings
    matching = _Kept(lambda: Matching(settings), settings.dedupe_horizon_days, _preset_caps(scenario))
    transfer = _Kept(lambda: Transfer(settings.personal_data_retention_days), settings.dedupe_horizon_days)
    waiting = [(_time(p.value), p) for p in particulars]
    fed = 0
    known = {_field(p.value, "arrival_id") for p in particulars}

    def to_transfer(rec: _Rec, cause: int) -> None:
        sent = transfer.handle(rec)
        if sent is None:
            run.set_aside.append(("transfer", cause))
        for s in sent or ():
            run.outputs.append(Out(s.topic, s.key, s.value, cause))

    def particulars_until(when: datetime | None, cause: int) -> None:
        nonlocal fed
        while fed < len(waiting) and (when is None or waiting[fed][0] is None or waiting[fed][0] <= when):
            p = waiting[fed][1]
            to_transfer(_Rec(p.value, p.topic, p.partition, p.offset), cause)
            fed += 1

    for i, logged in enumerate(inputs):
        rec = _Rec(_override_cap(logged.value, scenario), logged.topic, logged.partition, logged.offset)
        outs = matching.handle(rec)
        if outs is None:
            run.set_aside.append(("matching", i))
        else:
            for o in outs:
                run.outputs.append(Out(o.topic, o.key, o.value, i))
                if o.topic == T.MATCHING_INSTRUCTIONS:
                    particulars_until(_time(o.value), i)
                    arrival_id = _field(o.value, "arrival_id")
                    if _field(o.value, "kind") == "RequestReturn" and arrival_id not in known:
                        known.add(arrival_id)
                        run.without_particulars.add(str(_field(o.value, "instruction_id")))
                        to_transfer(_Rec(stand_in(str(arrival_id), str(_field(o.value, "occurred_at"))),
                                         T.INTAKE_PARTICULARS), i)
                    to_transfer(_Rec(o.value, o.topic), i)
        if progress is not None:
            progress(1)
    particulars_until(None, len(inputs))
    return run
