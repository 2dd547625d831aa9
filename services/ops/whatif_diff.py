"""What differs between two runs: the weekly figures side by side, and the people.

People are named by arrival_id and application_id only. A Decision about a request belongs to
the arrival the request was for (`request <decision>` in its chain). Selection is a subject's
first `paired` Decision: earlier, later, not selected (only the baseline selected them), newly
selected (only the alternative did); a subject whose Decisions differ otherwise is listed as
"decisions differ". Executions and admitted arrivals are facts of the world, replayed as
recorded: one about a request or an offer the alternative never made is ignored by matching
(its own `ignored` Decision), and counted here.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from services.ops.figures import latest_balances
from services.ops.whatif_check import in_range, week_of
from services.ops.whatif_history import Logged
from services.ops.whatif_replay import Run
from shared import topics as T

FIGURES = ("pairs_formed", "returns_requested", "returns_executed", "admissions_offered")
MOVEMENTS = frozenset({"ReturnRequestAnswered", "ReturnExecuted", "ReturnFailed", "AdmissionArrived"})


@dataclass(frozen=True)
class Facts:
    """What the diff needs of the recorded input: which ids are people, and each event's type."""

    arrivals: frozenset[str]
    applications: frozenset[str]
    event_types: dict[str, str]

    @classmethod
    def of(cls, inputs: list[Logged]) -> "Facts":
        arrivals, applications, types = set(), set(), {}
        for rec in inputs:
            try:
                event = json.loads(rec.value)["event"]
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(event, dict):
                continue
            kind = str(event.get("event_type"))
            types[str(event.get("event_id"))] = kind
            if kind == "ArrivalRecorded" and event.get("arrival_id"):
                arrivals.add(str(event["arrival_id"]))
            elif kind in ("ExpressionOfInterestSubmitted", "ApplicationVetted") and event.get("application_id"):
                applications.add(str(event["application_id"]))
        return cls(frozenset(arrivals), frozenset(applications), types)


@dataclass(frozen=True)
class Step:
    decision: str
    reasons: tuple[str, ...]
    at: str
    week: str

    def said(self) -> str:
        return f"{self.decision} ({', '.join(self.reasons)}) {self.week}"


@dataclass(frozen=True)
class WeekRow:
    week: str
    base: dict
    alt: dict

    @property
    def differs(self) -> bool:
        return self.base != self.alt


@dataclass(frozen=True)
class Subject:
    subject: str
    kind: str  # arrival | application
    change: str  # earlier | later | not selected | newly selected | decisions differ
    base_week: str | None
    alt_week: str | None
    base_step: Step | None  # the first Decision that differs, in each run
    alt_step: Step | None


@dataclass
class Diff:
    weeks: list[WeekRow] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    ignored_movements: tuple[int, int] = (0, 0)  # baseline, alternative

    @property
    def count(self) -> int:
        return len(self.subjects) + sum(1 for w in self.weeks if w.differs)


def _docs(run: Run, topic: str) -> list[dict]:
    return [o.doc for o in run.outputs if o.topic == topic]


def weekly(run: Run) -> dict[str, dict]:
    """Each week's latest figures in a run."""
    return {week: {name: int(b.get(name) or 0) for name in FIGURES}
            for week, b in latest_balances(_docs(run, T.OPS_BALANCE)).items()}


def side_by_side(base: Run, alt: Run, first: str | None, last: str | None) -> list[WeekRow]:
    """The weeks either run counted in, with the cumulative balance at each week's end (returns
    executed minus admissions offered, summed over the weeks so far: a week's latest
    WeeklyBalance may come weeks later, when a late fact is counted in it, and carry the
    scheme's totals of that later time)."""
    b, a = weekly(base), weekly(alt)
    zero = {name: 0 for name in FIGURES}
    rows, sum_b, sum_a = [], 0, 0
    for week in sorted(set(b) | set(a)):
        rb, ra = {**zero, **b.get(week, {})}, {**zero, **a.get(week, {})}
        sum_b += rb["returns_executed"] - rb["admissions_offered"]
        sum_a += ra["returns_executed"] - ra["admissions_offered"]
        if in_range(week, first, last):
            rows.append(WeekRow(week, {**rb, "cumulative_balance": sum_b}, {**ra, "cumulative_balance": sum_a}))
    return rows


def requests_of(run: Run) -> dict[str, str]:
    """request_id -> arrival_id of every return the run requested."""
    return {d["request_id"]: d["arrival_id"] for d in _docs(run, T.MATCHING_INSTRUCTIONS)
            if d.get("kind") == "RequestReturn"}


def chains(run: Run, facts: Facts, requests: dict[str, str], first: str | None, last: str | None
           ) -> dict[str, list[Step]]:
    out: dict[str, list[Step]] = {}
    for d in _docs(run, T.OPS_AUDIT):
        if d.get("event_type") != "Decision":
            continue
        subject, decision = str(d.get("subject_ref")), str(d.get("decision"))
        if subject in requests:
            subject, decision = requests[subject], f"request {decision}"
        if subject not in facts.arrivals and subject not in facts.applications:
            continue
        week = week_of(d)
        if not in_range(week, first, last):
            continue
        out.setdefault(subject, []).append(Step(decision, tuple(d.get("reasons") or ()), str(d.get("occurred_at")),
                                                str(week)))
    return out


def ignored_movements(run: Run, facts: Facts, first: str | None, last: str | None) -> int:
    return sum(1 for d in _docs(run, T.OPS_AUDIT)
               if d.get("decision") == "ignored" and facts.event_types.get(str(d.get("caused_by"))) in MOVEMENTS
               and in_range(week_of(d), first, last))


def _selected(steps: list[Step]) -> str | None:
    return next((s.week for s in steps if s.decision == "paired"), None)


def _first_difference(a: list[Step], b: list[Step]) -> tuple[Step | None, Step | None]:
    for i in range(max(len(a), len(b))):
        x, y = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        if x != y:
            return x, y
    return None, None


def compare(base: Run, alt: Run, facts: Facts, first: str | None = None, last: str | None = None) -> Diff:
    requests = {**requests_of(base), **requests_of(alt)}
    b, a = chains(base, facts, requests, first, last), chains(alt, facts, requests, first, last)
    subjects = []
    for subject in sorted(set(b) | set(a)):
        sb, sa = b.get(subject, []), a.get(subject, [])
        if sb == sa:
            continue
        wb, wa = _selected(sb), _selected(sa)
        if wb and wa:
            change = "earlier" if wa < wb else "later" if wa > wb else "decisions differ"
        elif wb or wa:
            change = "not selected" if wb else "newly selected"
        else:
            change = "decisions differ"
        x, y = _first_difference(sb, sa)
        subjects.append(Subject(subject, "arrival" if subject in facts.arrivals else "application", change,
                                wb, wa, x, y))
    return Diff(side_by_side(base, alt, first, last), subjects,
                (ignored_movements(base, facts, first, last), ignored_movements(alt, facts, first, last)))


def tally(subjects: list[Subject]) -> Counter:
    return Counter((s.kind, s.change) for s in subjects)
