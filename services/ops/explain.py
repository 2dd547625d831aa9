"""`oioo explain`: every Decision about one arrival, application or request, in order, with
the other side of each pair it was in — the answer a court or an MP's letter needs.

Pure: Decisions (and the ids-only links taken from ReturnRequested) in, a chain out.

How the sides link, as matching and transfer publish them:
- a seat's `paired` Decision names its request: reason `request_<request_id>`;
- a request's own Decisions (requested, accepted, refused, held, executed, ...) have it as subject;
- a case's `paired` Decision does not name the request, but the request id is derived from the
  Decision's cause and the arrival (stable ids), and ReturnRequested names both ids.
Order: event time first; among Decisions with the same time and cause, the order matching
decided them in, recovered from their stable ids.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared.ids import derived_id

REQUEST_REASON = "request_"

READABLE = {
    "no_open_blocker": "no open blocker",
    "minor": "a minor (claimed or assessed)",
    "asylum_claim_undecided": "asylum claim not yet decided",
    "asylum_claim_admitted": "asylum claim admitted for consideration",
    "protection_claim_open": "protection claim open",
    "legal_challenge_pending": "legal challenge pending",
    "absconded": "person absconded",
    "not_departed_from_france": "did not depart from France",
    "landed_before_scheme_start": "landed before the scheme started",
    "protection_claim_upheld": "protection claim upheld",
    "legal_challenge_upheld": "legal challenge upheld",
    "request_window_expired": "14-day request window expired",
    "reentrant_after_return": "returned before and came back (re-entry)",
    "reentrant_first": "re-entrants are taken first",
    "oldest_landed_at_first": "earliest landing taken first",
    "within_weekly_cap": "within the week's cap",
    "priority_nationality": "priority nationality",
    "oldest_application_first": "oldest application taken first",
    "back_at_head_after_broken_pair": "back at the head of the queue after a broken pair",
    "replaces_dropped_applicant": "replaces an applicant who dropped out",
    "takes_owed_seat_of_executed_return": "takes the seat owed to an executed return",
    "pair_formed": "pair formed",
    "france_accepted": "France accepted",
    "france_refused": "France refused",
    "reply_lapsed": "no answer from France by day 28 (counts as a refusal)",
    "blockers_resolved_against_person": "blockers resolved against the person",
    "return_executed": "return executed",
    "executed_despite_hold": "executed although on hold",
    "executed_before_answer": "executed before France answered",
    "awaiting_vetting": "awaiting vetting",
    "awaiting_family_members": "awaiting the rest of the family group",
    "vetted_clear": "vetted, security clear",
    "located_in_france_verified": "located in France (verified)",
    "application_withdrawn": "application withdrawn",
    "security_refused": "refused at security vetting",
    "prior_irregular_entry": "entered or tried to enter the UK irregularly",
    "asylum_ban": "banned from the UK asylum system",
    "illegal_working_in_uk": "found working illegally in the UK",
    "family_member_refused": "a family member was refused",
    "paired_returns_executed": "every paired return executed",
    "arrived_under_offer": "arrived under the offer",
    "back_to_head_of_queue": "back to the head of the queue",
    "admission_side_dropped": "the admission side dropped out",
    "three_month_limit": "still on hold at the 3-month limit",
    "arrival_not_yet_recorded": "arrival not recorded yet (kept until it is)",
    "application_not_yet_submitted": "application not submitted yet (kept until it is)",
    "unknown_subject": "unknown subject",
    "reentry_after_return": "re-entry after return",
}


def readable(reason: str) -> str:
    if reason.startswith(REQUEST_REASON):
        return f"with return request {reason[len(REQUEST_REASON):]}"
    if reason.startswith("week_"):
        return f"in week {reason[5:]}"
    if reason.startswith("pair_"):
        return f"pair {reason[5:]}"
    if reason.startswith("family_group_of_"):
        return f"family group of {reason[16:]}"
    if reason.startswith("return_failed_"):
        return f"return failed: {reason[14:].replace('_', ' ')}"
    return READABLE.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class Entry:
    """One Decision as read from ops.audit.v1, with where it was found."""

    doc: dict
    partition: int = 0
    offset: int = 0

    @property
    def subject(self) -> str:
        return str(self.doc.get("subject_ref"))

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(str(self.doc.get("occurred_at")).replace("Z", "+00:00"))


@dataclass
class Chain:
    subject: str
    kind: str  # arrival | application | request | unknown
    arrivals: list[str] = field(default_factory=list)
    applications: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    see_also: list[str] = field(default_factory=list)  # requests of the linked seats, not followed
    pairs: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)  # request -> (case, seats)


class Audit:
    """The Decisions of ops.audit.v1 indexed by subject, and the pair links between subjects."""

    def __init__(self, decisions: Iterable[Entry], requested: Iterable[dict] = ()):
        self.by_subject: dict[str, list[Entry]] = {}
        for e in decisions:
            if e.doc.get("event_type") == "Decision":
                self.by_subject.setdefault(e.subject, []).append(e)
        self.arrival_of: dict[str, str] = {}
        for r in requested:  # ReturnRequested: only its two ids are read
            if r.get("request_id") and r.get("arrival_id"):
                self.arrival_of[str(r["request_id"])] = str(r["arrival_id"])
        for subject, entries in self.by_subject.items():
            for e in entries:
                if e.doc.get("decision") == "paired" and not self._seat_reasons(e):
                    request = str(derived_id(str(e.doc.get("caused_by")), "request", subject))
                    if request in self.by_subject:
                        self.arrival_of.setdefault(request, subject)
        self.seats_of: dict[str, list[str]] = {}
        for subject, entries in self.by_subject.items():
            for e in entries:
                for request in self._seat_reasons(e):
                    seats = self.seats_of.setdefault(request, [])
                    if subject not in seats:
                        seats.append(subject)

    @staticmethod
    def _seat_reasons(e: Entry) -> list[str]:
        if e.doc.get("decision") != "paired":
            return []
        return [r[len(REQUEST_REASON):] for r in e.doc.get("reasons") or [] if r.startswith(REQUEST_REASON)]

    def requests_of_arrival(self, arrival: str) -> list[str]:
        return [r for r, a in self.arrival_of.items() if a == arrival]

    def requests_of_seat(self, application: str) -> list[str]:
        out: list[str] = []
        for e in self.by_subject.get(application, []):
            out += [r for r in self._seat_reasons(e) if r not in out]
        return out

    def kind(self, subject: str) -> str:
        if subject in self.arrival_of or subject in self.seats_of:
            return "request"
        if self.requests_of_seat(subject) or any(
                e.doc.get("decision") in ("refused_admission", "offered", "admitted", "requeued")
                or {"awaiting_vetting", "application_not_yet_submitted"} & set(e.doc.get("reasons") or [])
                for e in self.by_subject.get(subject, [])):
            return "application"
        if subject in self.by_subject:
            return "arrival"
        return "unknown"

    def explain(self, subject: str) -> Chain:
        kind = self.kind(subject)
        chain = Chain(subject, kind)
        if kind == "arrival":
            chain.arrivals = [subject]
            chain.requests = self.requests_of_arrival(subject)
            chain.applications = _unique(s for r in chain.requests for s in self.seats_of.get(r, []))
        elif kind == "application":
            chain.applications = [subject]
            chain.requests = self.requests_of_seat(subject)
            chain.arrivals = _unique(self.arrival_of[r] for r in chain.requests if r in self.arrival_of)
        elif kind == "request":
            chain.requests = [subject]
            chain.arrivals = [self.arrival_of[subject]] if subject in self.arrival_of else []
            chain.applications = list(self.seats_of.get(subject, []))
        chain.pairs = {r: (self.arrival_of.get(r), list(self.seats_of.get(r, []))) for r in chain.requests}
        chain.see_also = _unique(r for a in chain.applications for r in self.requests_of_seat(a)
                                 if r not in chain.requests)
        entries = [e for s in (*chain.arrivals, *chain.applications, *chain.requests)
                   for e in self.by_subject.get(s, [])]
        roles = {**dict.fromkeys(chain.arrivals, "arrival"), **dict.fromkeys(chain.applications, "application"),
                 **dict.fromkeys(chain.requests, "request")}
        chain.entries = in_order(entries, roles)
        return chain


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


# Within one cause, the scheme's own order: what happened to the request, the case's and the
# seat's standing, a new pair (the case, then its seat), then what transfer and enforcement did
# with matching's instructions (they act after matching is done with the cause). Matching's ids
# name what they are about, not a position, so the order is read from the decisions themselves.
STAGE = {
    "accepted": 0, "refused": 0, "executed": 0, "failed": 0, "held": 0, "hold_lifted": 0, "withdrawn": 0,
    "reentry_detected": 0, "illegal_working_match": 0, "cap_set": 0, "admissions_paused": 0,
    "admissions_resumed": 0,
    "blocked": 1, "eligible": 1, "ineligible": 1, "recorded": 1, "ignored": 1, "deferred": 1,
    "requeued": 2, "refused_admission": 2,
    "paired": 3,
    "offered": 4, "admitted": 4,
}
ROLE = {"arrival": 0, "application": 1, "request": 2}


def causal_rank(doc: dict, role: str) -> tuple[int, int, int]:
    return (0 if doc.get("producer") == "oioo-matching" else 1, STAGE.get(str(doc.get("decision")), 1),
            ROLE.get(role, 3))


def in_order(entries: Iterable[Entry], roles: dict[str, str] | None = None) -> list[Entry]:
    roles = roles or {}
    unique = {str(e.doc.get("event_id")): e for e in entries}
    listed = sorted(unique.values(), key=lambda e: (e.when, e.partition, e.offset))
    first_seen: dict[str, int] = {}
    for i, e in enumerate(listed):
        first_seen.setdefault(str(e.doc.get("caused_by")), i)

    def key(e: Entry):
        return (e.when, first_seen[str(e.doc.get("caused_by"))], causal_rank(e.doc, roles.get(e.subject, "")),
                e.partition, e.offset)
    return sorted(listed, key=key)


def role(chain: Chain, subject: str) -> str:
    if subject in chain.arrivals:
        return f"case {subject}"
    if subject in chain.applications:
        return f"seat {subject}"
    return f"request {subject}"


def lines(chain: Chain) -> list[dict[str, str]]:
    """The chain as rows of plain text (time, subject, decision, reasons, rule, cause)."""
    rows = []
    for e in chain.entries:
        d = e.doc
        reasons = list(d.get("reasons") or [])
        rows.append({
            "time": e.when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "subject": role(chain, e.subject),
            "decision": str(d.get("decision")),
            "reasons": "; ".join(f"{readable(r)} [{r}]" if readable(r) != r else r for r in reasons) or "-",
            "rule_version": str(d.get("rule_version")),
            "caused_by": str(d.get("caused_by")),
        })
    return rows


def summary(chain: Chain) -> list[str]:
    """A few sentences that say how the sides link, for the top of the explanation."""
    if chain.kind == "unknown":
        return [f"No Decision on ops.audit.v1 names {chain.subject}."]
    out = [f"{chain.kind.capitalize()} {chain.subject}: {len(chain.entries)} decisions, in the order they were taken."]
    if not chain.requests:
        out.append("Never paired: no return request was made for it.")
    for r, (arrival, seats) in chain.pairs.items():
        out.append(f"Return request {r}: case {arrival or '(not found)'} paired with "
                   f"seat {' then '.join(seats) if seats else '(none recorded)'}.")
    if chain.see_also:
        out.append("The seat(s) were also paired with request(s) " + ", ".join(chain.see_also)
                   + " (run `oioo explain <request_id>` for those).")
    return out
