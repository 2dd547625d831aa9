"""The figures ops watch, folded from the `ops.*` topics. Pure: documents in, figures out.

`Board` keeps what the dashboard shows; the CLI's status and report use the same functions,
so the page, the terminal and the Joint Committee's CSV agree on what "this week" means.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from shared import topics as T
from shared.events.outbound import WeeklyBalance

BALANCE_FIELDS: tuple[str, ...] = tuple(n for n in WeeklyBalance.model_fields
                                        if n not in ("event_id", "event_type", "occurred_at", "producer"))
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
RETURN_COUNTS = ("returns_requested", "returns_accepted", "returns_refused", "returns_executed")
ADMISSION_STAGES = ("waiting", "ready", "paired", "offered", "arrived", "refused", "withdrawn")

# What a Decision says of an application's stage (decisions not listed leave it where it was).
_APPLICATION_STAGE = {
    "blocked": "waiting", "eligible": "ready", "requeued": "ready", "paired": "paired",
    "offered": "offered", "admitted": "arrived", "refused_admission": "refused", "withdrawn": "withdrawn",
}
# An application's first Decision is one of these; a case's never is.
_APPLICATION_FIRST_REASONS = {"awaiting_vetting", "application_not_yet_submitted"}
_HOLD_ENDS = {"hold_lifted", "withdrawn", "executed", "refused", "failed"}


def latest_balances(balances: Iterable[dict]) -> dict[str, dict]:
    """The latest WeeklyBalance per week ("one writer publishes it, in order")."""
    out: dict[str, dict] = {}
    for doc in balances:
        if doc.get("event_type") == "WeeklyBalance" and isinstance(doc.get("week"), str):
            out[doc["week"]] = doc
    return dict(sorted(out.items()))


def this_week(balances: dict[str, dict]) -> str | None:
    """The latest week present: the system's own idea of the present, in event time."""
    return max(balances) if balances else None


def weeks_between(balances: dict[str, dict], first: str | None, last: str | None) -> dict[str, dict]:
    return {w: b for w, b in balances.items() if (first is None or w >= first) and (last is None or w <= last)}


def order_alerts(alerts: Iterable[dict], limit: int | None = None) -> list[dict]:
    """Critical first, then warnings, then info; the newest first within each."""
    listed = list(alerts)
    ranked = sorted(range(len(listed)),
                    key=lambda i: (SEVERITY_RANK.get(listed[i].get("severity"), 3), -i))
    return [listed[i] for i in ranked[:limit]]


def scheme_totals(balances: dict[str, dict]) -> dict[str, int]:
    """Counts summed over every week's latest figures."""
    names = (*RETURN_COUNTS, "admissions_offered", "admissions_arrived", "pairs_formed",
             "reentries_detected", "illegal_working_matches")
    return {n: sum(int(b.get(n, 0)) for b in balances.values()) for n in names}


class Board:
    """Everything the dashboard shows, updated one ops record at a time."""

    def __init__(self, keep_alerts: int = 200):
        self.balances: dict[str, dict] = {}
        self.alerts: list[dict] = []
        self.keep_alerts = keep_alerts
        self.dead_letters: Counter[str] = Counter()
        self.on_hold: set[str] = set()
        self.applications: dict[str, str] = {}
        self.last_balance: dict = {}  # its cumulative_* are the scheme's totals when it was published
        self.records = 0
        self.version = 0

    def take(self, topic: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            return
        self.records += 1
        self.version += 1
        if topic == T.OPS_BALANCE and doc.get("event_type") == "WeeklyBalance":
            self.balances[doc["week"]] = doc
            self.last_balance = doc
        elif topic == T.OPS_ALERTS and doc.get("event_type") == "Alert":
            self.alerts.append({k: doc.get(k) for k in ("alert_id", "severity", "kind", "subject_ref",
                                                        "message", "occurred_at")})
            del self.alerts[:-self.keep_alerts]
        elif topic == T.OPS_DEAD_LETTERS and doc.get("event_type") == "DeadLetter":
            self.dead_letters[str(doc.get("error_code"))] += 1
        elif topic == T.OPS_AUDIT and doc.get("event_type") == "Decision":
            self._decision(doc)

    def _decision(self, d: dict) -> None:
        subject, decision, reasons = str(d.get("subject_ref")), d.get("decision"), list(d.get("reasons") or [])
        if decision == "held":
            self.on_hold.add(subject)
        elif decision in _HOLD_ENDS:
            self.on_hold.discard(subject)
        known = subject in self.applications
        if not known and not (_APPLICATION_FIRST_REASONS & set(reasons) or decision == "refused_admission"):
            return
        stage = _APPLICATION_STAGE.get(decision)
        if stage is not None:
            self.applications[subject] = stage

    def snapshot(self) -> dict[str, Any]:
        week = this_week(self.balances)
        current = self.balances.get(week, {}) if week else {}
        totals = scheme_totals(self.balances)
        stages = Counter(self.applications.values())
        latest = self.last_balance
        return {
            "version": self.version,
            "records": self.records,
            "week": week,
            "cap": current.get("cap"),
            "pairs_formed": current.get("pairs_formed"),
            "admissions_paused": bool(current.get("admissions_paused", False)),
            "returns": {
                "this_week": {n: current.get(n, 0) for n in RETURN_COUNTS},
                "scheme": {n: totals[n] for n in RETURN_COUNTS},
                "on_hold": len(self.on_hold),
            },
            "admissions": {
                "stages": {s: stages.get(s, 0) for s in ADMISSION_STAGES},
                "offered": totals["admissions_offered"], "arrived": totals["admissions_arrived"],
            },
            "cumulative": {
                "returns_executed": latest.get("cumulative_returns_executed", 0),
                "admissions_offered": latest.get("cumulative_admissions_offered", 0),
            },
            "weeks": [{n: b.get(n) for n in ("week", "cap", "pairs_formed", "returns_executed",
                                             "admissions_offered", "cumulative_returns_executed",
                                             "cumulative_admissions_offered")}
                      for _, b in sorted(self.balances.items())],
            "alerts": order_alerts(self.alerts, 12),
            "dead_letters": dict(sorted(self.dead_letters.items())),
        }
