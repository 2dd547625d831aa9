"""What the demo observed on the outbound topics, and the contract's invariants checked on it
against the simulation's own books (deploy.sim.world)."""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from deploy.sim.world import World, _t
from shared import topics as T

FIRST_ASSESSMENT = ("eligible", "blocked", "ineligible")
# Reasons that only a second, distinct event about the same subject can cause. The simulation
# never sends such a second event, so seeing one means a duplicate got through.
DUPLICATE_ONLY_REASONS = {"arrival_already_recorded", "application_already_submitted", "already_vetted",
                          "request_already_answered"}
WINDOW = timedelta(days=14)


@dataclass
class Observed:
    """Every outbound record, by topic, in per-partition order."""

    records: dict[str, list[tuple[int, int, dict, bytes]]] = field(default_factory=lambda: defaultdict(list))
    unreadable: list[str] = field(default_factory=list)

    def add(self, topic: str, partition: int, offset: int, value: bytes) -> dict | None:
        try:
            doc = json.loads(value)
        except ValueError:
            self.unreadable.append(f"{topic}[{partition}]@{offset}")
            return None
        self.records[topic].append((partition, offset, doc, value))
        return doc

    def docs(self, topic: str) -> list[dict]:
        return [d for _, _, d, _ in self.records.get(topic, [])]

    def balances(self) -> list[dict]:
        return self.docs(T.OPS_BALANCE)  # one partition: publishing order

    def latest_balance_per_week(self) -> dict[str, dict]:
        latest: dict[str, dict] = {}
        for b in self.balances():
            latest[b["week"]] = b
        return dict(sorted(latest.items()))

    def decisions(self) -> list[dict]:
        return self.docs(T.OPS_AUDIT)

    def first_of_each(self, topic: str) -> list[dict]:
        seen, out = set(), []
        for d in self.docs(topic):
            if d["event_id"] not in seen:
                seen.add(d["event_id"])
                out.append(d)
        return out


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)


def _fmt(problems: list[str], n: int = 5) -> list[str]:
    return problems[:n] + ([f"... and {len(problems) - n} more"] if len(problems) > n else [])


def check_all(world: World, obs: Observed) -> list[Result]:
    return [
        check_cap(world, obs), check_pause(world, obs), check_balance(obs), check_event_ids(obs),
        check_duplicates(world, obs), check_window(world, obs), check_blockers(world, obs),
        check_holds(world, obs), check_upheld(world, obs), check_decisions(world, obs),
        check_offers(world, obs), check_seats(obs), check_fields(world, obs), check_dead_letters(world, obs), check_bans(world, obs),
        check_personal_data(world, obs),
    ]


# --------------------------------------------------------------------------- invariant 1: cap

def check_cap(world: World, obs: Observed) -> Result:
    """pairs_formed <= cap in force; a cap lowered below the live pairs breaks none, so there it
    may stay above the cap, but it must never grow while at or above it."""
    problems, prev, worst = [], {}, {}
    for b in obs.balances():
        week, t, pairs = b["week"], _t(b["occurred_at"]), b["pairs_formed"]
        cap = world.cap_in_force(week, t)
        if b["cap"] != cap:
            problems.append(f"{week} at {t:%m-%d %H:%M}: published cap {b['cap']}, cap in force {cap}")
        before = prev.get(week, 0)
        if pairs > before and pairs > cap:
            problems.append(f"{week} at {t:%m-%d %H:%M}: pairs went {before} -> {pairs} with cap {cap}")
        prev[week] = pairs
        worst[week] = max(worst.get(week, 0), pairs)
    lowered = {w: v[-1][1] for w, v in world.caps_set.items()}
    detail = f"{len(prev)} weeks, max live pairs per week {max(worst.values(), default=0)}"
    if lowered:
        detail += "; caps set: " + ", ".join(f"{w}={c}" for w, c in sorted(lowered.items()))
    return Result("weekly cap: pairs_formed <= cap in force (never grows at/above it)", not problems,
                  detail, _fmt(problems))


def check_pause(world: World, obs: Observed) -> Result:
    problems = []
    for r in obs.first_of_each(T.LIAISON_UK_RETURN_REQUESTS):
        if r["event_type"] == "ReturnRequested" and world.paused_at(_t(r["occurred_at"])):
            problems.append(f"request {r['request_id']} formed at {r['occurred_at']} while paused")
    spans = ", ".join(f"{p:%m-%d %H:%M}..{(q or p):%m-%d %H:%M}" for p, q in world.pauses)
    return Result("no pair forms while admissions are paused", not problems, f"paused {spans}", _fmt(problems))


# --------------------------------------------------------------------------- invariant 2: balance

def check_balance(obs: Observed) -> Result:
    problems = [f"{b['week']} at {b['occurred_at']}: offered {b['cumulative_admissions_offered']} > executed "
                f"{b['cumulative_returns_executed']}" for b in obs.balances()
                if b["cumulative_admissions_offered"] > b["cumulative_returns_executed"]]
    last = obs.balances()[-1] if obs.balances() else {}
    return Result("cumulative admissions offered <= cumulative returns executed", not problems,
                  f"{len(obs.balances())} WeeklyBalance records; final executed "
                  f"{last.get('cumulative_returns_executed')}, offered {last.get('cumulative_admissions_offered')}",
                  _fmt(problems))


# --------------------------------------------------------------------------- invariant 3: once

def check_event_ids(obs: Observed) -> Result:
    problems, total, repeats = [], 0, 0
    for topic, recs in obs.records.items():
        if topic in T.INBOUND_TOPICS:
            continue  # ours (ops.control.v1 is read only to scan it for personal data)
        seen: dict[str, str] = {}
        for _, _, doc, _ in recs:
            total += 1
            canon = json.dumps(doc, sort_keys=True)
            eid = doc.get("event_id")
            if eid in seen:
                repeats += 1
                if seen[eid] != canon:
                    problems.append(f"{topic}: event_id {eid} published with different content")
            else:
                seen[eid] = canon
    return Result("no outbound event_id reused with different content (per topic)", not problems,
                  f"{total} outbound records, {repeats} exact re-publications", _fmt(problems))


def check_duplicates(world: World, obs: Observed) -> Result:
    problems = []
    by_cause_docs: dict[str, list[dict]] = defaultdict(list)
    for d in obs.first_of_each(T.OPS_AUDIT):
        by_cause_docs[d["caused_by"]].append(d)
        bad = DUPLICATE_ONLY_REASONS.intersection(d["reasons"])
        if bad:
            problems.append(f"Decision {d['decision']} {sorted(bad)} on {d['subject_ref']} (a duplicate was acted on)")
    for eid, (etype, subject) in sorted(world.duplicates.items()):
        docs = [d for d in by_cause_docs.get(eid, []) if d["subject_ref"] == subject]
        if etype == "ArrivalRecorded" or etype == "ExpressionOfInterestSubmitted":
            first = [d for d in docs if d["decision"] in FIRST_ASSESSMENT + ("refused_admission",)]
            if len(first) != 1:
                problems.append(f"duplicated {etype} {eid}: {len(first)} first assessments (want 1)")
        elif etype == "ReturnRequestAnswered":
            answers = [d for d in docs if d["decision"] in ("accepted", "refused", "ignored")]
            if len(answers) != 1:
                problems.append(f"duplicated answer {eid}: {len(answers)} answer decisions (want 1)")
        elif etype == "ReturnExecuted":
            done = [d for d in docs if d["decision"] in ("executed", "ignored")]
            if len(done) != 1:
                problems.append(f"duplicated execution {eid}: {len(done)} decisions (want 1)")
    # one request per request_id, one offer per application, figures that add up
    per_request = Counter(r["request_id"] for r in obs.first_of_each(T.LIAISON_UK_RETURN_REQUESTS)
                          if r["event_type"] == "ReturnRequested")
    problems += [f"request {k} requested {n} times" for k, n in per_request.items() if n > 1]
    per_offer = Counter(o["application_id"] for o in obs.first_of_each(T.LIAISON_UK_ADMISSION_NOTICES))
    problems += [f"application {k} offered {n} times" for k, n in per_offer.items() if n > 1]
    executed = {d["subject_ref"] for d in obs.first_of_each(T.OPS_AUDIT) if d["decision"] == "executed"}
    per_exec = Counter(d["subject_ref"] for d in obs.first_of_each(T.OPS_AUDIT) if d["decision"] == "executed")
    problems += [f"request {k} executed {n} times" for k, n in per_exec.items() if n > 1]
    last = obs.balances()[-1] if obs.balances() else None
    if last is not None:
        if last["cumulative_returns_executed"] != len(executed):
            problems.append(f"cumulative_returns_executed {last['cumulative_returns_executed']} != "
                            f"{len(executed)} requests with an 'executed' Decision")
        if last["cumulative_admissions_offered"] != len(per_offer):
            problems.append(f"cumulative_admissions_offered {last['cumulative_admissions_offered']} != "
                            f"{len(per_offer)} applications offered")
        weeks = obs.latest_balance_per_week().values()
        if sum(w["returns_executed"] for w in weeks) != last["cumulative_returns_executed"]:
            problems.append("weekly returns_executed do not add up to the cumulative figure")
    kinds = Counter(etype for etype, _ in world.duplicates.values())
    return Result("duplicates sent (same event_id) produced nothing extra", not problems,
                  f"{len(world.duplicates)} events sent twice ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})",
                  _fmt(problems))


# --------------------------------------------------------------------------- invariant 4: requests

def _requests(obs: Observed) -> list[dict]:
    return [r for r in obs.first_of_each(T.LIAISON_UK_RETURN_REQUESTS) if r["event_type"] == "ReturnRequested"]


def check_window(world: World, obs: Observed) -> Result:
    problems = []
    for r in _requests(obs):
        a = world.arrivals.get(r["arrival_id"])
        t = _t(r["occurred_at"])
        if a is None:
            problems.append(f"request {r['request_id']} for an arrival the simulation never sent")
            continue
        if _t(r["landed_at"]) != a.landed_at:
            problems.append(f"request {r['request_id']}: landed_at {r['landed_at']} != sent {a.landed_at}")
        if t >= a.landed_at + WINDOW:
            problems.append(f"request {r['request_id']} at {t} >= landed {a.landed_at} + 14 d")
    late = max(((_t(r["occurred_at"]) - world.arrivals[r["arrival_id"]].landed_at) for r in _requests(obs)
                if r["arrival_id"] in world.arrivals), default=timedelta(0))
    return Result("no ReturnRequested at or after landed_at + 14 days", not problems,
                  f"{len(_requests(obs))} requests; latest at {late.total_seconds() / 86400:.2f} days after landing",
                  _fmt(problems))


def check_blockers(world: World, obs: Observed) -> Result:
    """No request while, by the simulation's books, a blocker was open. A blocker sent in the
    same 6-hour step as the request may not have been read yet (topics interleave in no fixed
    order): then the system must have held the request once it read it."""
    problems, grace = [], 0
    for r in _requests(obs):
        a = world.arrivals.get(r["arrival_id"])
        if a is None:
            continue
        t = _t(r["occurred_at"])
        for b in a.open_blockers(t):
            if t > b.visible_from:
                problems.append(f"request {r['request_id']} at {t:%m-%d %H:%M} for {a.arrival_id}: "
                                f"{b.kind} open since {b.opened_at:%m-%d %H:%M}")
            else:
                grace += 1
                req = world.requests.get(r["request_id"])
                if req is None or not req.held:
                    problems.append(f"request {r['request_id']} at {t:%m-%d %H:%M} for {a.arrival_id}: {b.kind} "
                                    f"sent in the same step, and the request was never held")
    return Result("no ReturnRequested while a blocker was open (minor, asylum, claim, challenge, absconded, "
                  "not from France)", not problems,
                  f"{len(_requests(obs))} requests checked; {grace} formed in the same step as a blocker, all held"
                  if not problems else f"{grace} same-step cases", _fmt(problems))


def check_holds(world: World, obs: Observed) -> Result:
    """A blocker that opens after the request was sent holds the removal."""
    problems, holds = [], 0
    for a in world.arrivals.values():
        for rid in a.requests:
            req = world.requests[rid]
            for b in a.blockers:
                if b.opened_at <= req.requested_at or b.kind in ("minor", "asylum", "not_from_france"):
                    continue
                if req.ended_at is not None and req.ended_at <= b.visible_from:
                    continue  # the request ended before (or as) the blocker was read
                holds += 1
                # held once the system read it (a Decision at or after it opened), or on hold already
                if not (req.on_hold_at(b.opened_at)
                        or any(kind == "held" and when >= b.opened_at for when, kind in req.holds)):
                    problems.append(f"request {rid}: {b.kind} opened {b.opened_at:%m-%d %H:%M} on a live request, "
                                    f"no 'held' Decision")
    alerts = Counter(d["kind"] for d in obs.first_of_each(T.OPS_ALERTS))
    return Result("a blocker opening after the request holds it", not problems,
                  f"{holds} late blockers on live requests; alerts removal_on_hold {alerts['removal_on_hold']}, "
                  f"executed_despite_hold {alerts['executed_despite_hold']}", _fmt(problems))


def check_upheld(world: World, obs: Observed) -> Result:
    problems, withdrawn = [], 0
    for r in _requests(obs):
        a = world.arrivals.get(r["arrival_id"])
        if a is not None and a.upheld_at is not None and _t(r["occurred_at"]) > a.upheld_at:
            problems.append(f"request {r['request_id']} at {r['occurred_at']} after a claim upheld at {a.upheld_at}")
    for a in world.arrivals.values():
        if a.upheld_at is None:
            continue
        step_end = max((b.resolved_visible for b in a.blockers if b.resolved_visible), default=a.upheld_at)
        for rid in a.requests:
            req = world.requests[rid]
            if req.requested_at >= a.upheld_at or (req.ended_at is not None and req.ended_at < a.upheld_at):
                continue
            if req.ended == "withdrawn" and req.withdrawn_on_wire:
                withdrawn += 1
            elif req.ended is None or req.ended_at > step_end:
                problems.append(f"request {rid} live when {a.arrival_id}'s claim was upheld, not withdrawn "
                                f"({req.ended or 'still live'})")
    upheld = sum(1 for a in world.arrivals.values() if a.upheld_at)
    return Result("none after an upheld claim or challenge; a held request is withdrawn", not problems,
                  f"{upheld} arrivals with an upheld outcome, {withdrawn} held requests withdrawn", _fmt(problems))


# --------------------------------------------------------------------------- pairing rules

def check_offers(world: World, obs: Observed) -> Result:
    """An admission is offered only once every return paired with it has been executed; a
    family's offers go out together."""
    executed_at = {d["subject_ref"]: _t(d["occurred_at"]) for d in obs.first_of_each(T.OPS_AUDIT)
                   if d["decision"] == "executed"}
    problems, families = [], defaultdict(set)
    offers = obs.first_of_each(T.LIAISON_UK_ADMISSION_NOTICES)
    for o in offers:
        t = _t(o["occurred_at"])
        if not o["paired_request_ids"]:
            problems.append(f"offer {o['application_id']} names no paired return")
        for rid in o["paired_request_ids"]:
            if rid not in executed_at or executed_at[rid] > t:
                problems.append(f"offer {o['application_id']} at {t:%m-%d %H:%M}: return {rid} not executed by then")
        if o["family_group_ref"]:
            families[o["family_group_ref"]].add(o["occurred_at"])
    problems += [f"family {ref} offered at {len(times)} different times" for ref, times in families.items()
                 if len(times) > 1]
    for ref in families:
        members = [a for a in world.applications.values() if a.family_group_ref == ref]
        offered = {o["application_id"] for o in offers if o["family_group_ref"] == ref}
        left = [m.application_id for m in members if m.application_id not in offered and not m.withdrawn]
        if left:
            problems.append(f"family {ref}: {len(offered)} offered, {left} not")
    return Result("offers only after every paired return executed; families offered whole and together",
                  not problems, f"{len(offers)} offers, {len(families)} families offered", _fmt(problems))


def check_seats(obs: Observed) -> Result:
    """No return is requested without its admission seat."""
    seated = set()
    for d in obs.first_of_each(T.OPS_AUDIT):
        if d["decision"] == "paired":
            seated.update(r.removeprefix("request_") for r in d["reasons"] if r.startswith("request_"))
    missing = [r["request_id"] for r in _requests(obs) if r["request_id"] not in seated]
    return Result("no return requested without an admission seat paired to it", not missing,
                  f"{len(_requests(obs))} requests", _fmt([f"request {m}: no applicant paired" for m in missing]))


def check_fields(world: World, obs: Observed) -> Result:
    """Outbound fields as the contract defines them: a request carries the particulars sent at
    intake and reply_due_by = requested + 14 d; an offer's visa runs 3 months; every `week` is
    the London ISO week of occurred_at; WeeklyBalance is published in event-time order."""
    from shared.timeutil import add_months, iso_week

    problems = []
    for r in _requests(obs):
        t = _t(r["occurred_at"])
        if _t(r["reply_due_by"]) != t + WINDOW:
            problems.append(f"request {r['request_id']}: reply_due_by {r['reply_due_by']} != requested + 14 d")
        if r["week"] != iso_week(t):
            problems.append(f"request {r['request_id']}: week {r['week']} != {iso_week(t)}")
        a = world.arrivals.get(r["arrival_id"])
        if a is not None:
            p = a.person
            sent = {"family_name": p.family_name, "given_names": p.given_names, "nationality": p.nationality,
                    "date_of_birth": p.date_of_birth.isoformat() if p.date_of_birth else None}
            wrong = [k for k, v in sent.items() if r[k] != v]
            if wrong:
                problems.append(f"request {r['request_id']}: {wrong} differ from the arrival")
    for o in obs.first_of_each(T.LIAISON_UK_ADMISSION_NOTICES):
        t = _t(o["occurred_at"])
        if _t(o["visa_valid_until"]) != add_months(t, 3) or o["week"] != iso_week(t):
            problems.append(f"offer {o['application_id']}: visa_valid_until/week wrong")
    last = None
    for b in obs.balances():
        t = _t(b["occurred_at"])
        if last is not None and t < last:
            problems.append(f"WeeklyBalance {b['week']} at {t} published after one at {last}")
        last = t
    return Result("outbound fields (particulars, reply_due_by, visa, week) and balance order", not problems,
                  f"{len(_requests(obs))} requests, {len(obs.first_of_each(T.LIAISON_UK_ADMISSION_NOTICES))} offers",
                  _fmt(problems))


# --------------------------------------------------------------------------- invariant 6: audit

def check_decisions(world: World, obs: Observed) -> Result:
    subjects = Counter(d["subject_ref"] for d in obs.first_of_each(T.OPS_AUDIT))
    first = {d["subject_ref"] for d in obs.first_of_each(T.OPS_AUDIT)
             if d["decision"] in FIRST_ASSESSMENT + ("refused_admission",)}
    missing = [a for a in world.arrivals if a not in subjects] + [p for p in world.applications if p not in subjects]
    no_first = [s for s in [*world.arrivals, *world.applications] if s not in first]
    problems = [f"{s}: no Decision" for s in missing]
    rules = Counter(d["rule_version"] for d in obs.first_of_each(T.OPS_AUDIT))
    empty = sum(1 for d in obs.first_of_each(T.OPS_AUDIT) if not d["reasons"] or not d["rule_version"])
    if empty:
        problems.append(f"{empty} Decisions without reasons or rule version")
    return Result("every accepted arrival and application has a Decision on ops.audit.v1", not problems,
                  f"{len(world.arrivals)} arrivals, {len(world.applications)} applications; "
                  f"{sum(subjects.values())} Decisions, rule versions {dict(rules)}; "
                  f"{len(no_first)} without a first assessment (eligible/blocked/ineligible)", _fmt(problems))


# --------------------------------------------------------------------------- invariant 7: nothing lost

def check_dead_letters(world: World, obs: Observed) -> Result:
    letters = obs.first_of_each(T.OPS_DEAD_LETTERS)
    at = defaultdict(list)
    for d in letters:
        at[(d["source_topic"], d["partition"], d["offset"])].append(d)
    problems, expected = [], set()
    for bad in world.bad:
        where = (bad.topic, bad.partition, bad.offset)
        expected.add(where)
        got = at.get(where, [])
        if len(got) != 1:
            problems.append(f"{bad.label}: {len(got)} dead letters (want 1)")
        elif got[0]["error_code"] != bad.expected_code:
            problems.append(f"{bad.label}: error_code {got[0]['error_code']} (want {bad.expected_code})")
    extra = [w for w in at if w not in expected]
    problems += [f"unexpected dead letter at {w[0]}[{w[1]}]@{w[2]}: {at[w][0]['error_code']}" for w in extra]
    acted = {d["subject_ref"] for d in obs.first_of_each(T.OPS_AUDIT)}
    problems += [f"{bad.label}: {bad.subject} was acted on" for bad in world.bad if bad.subject in acted]
    codes = Counter(d["error_code"] for d in letters)
    return Result("each bad message: exactly one DeadLetter with the right error_code, never acted on",
                  not problems, f"{len(world.bad)} bad messages; dead letters {dict(sorted(codes.items()))}",
                  _fmt(problems))


def check_bans(world: World, obs: Observed) -> Result:
    bans: dict[str, set[str]] = defaultdict(set)
    for d in obs.first_of_each(T.ENFORCEMENT_BANS):
        bans[d["biometric_id"]].add(d["event_id"])
    problems = []
    missing = world.reentrant_biometrics - set(bans)
    extra = set(bans) - world.reentrant_biometrics
    problems += [f"re-entrant {b[:12]}... has no ban" for b in missing]
    problems += [f"ban for {b[:12]}..., not a re-entrant" for b in extra]
    problems += [f"{b[:12]}... banned {len(ids)} times" for b, ids in bans.items() if len(ids) != 1]
    reentries = sum(1 for a in world.arrivals.values() if a.reentrant)
    return Result("one AsylumBanRecorded per re-entering person (by biometric)", not problems,
                  f"{reentries} re-entries by {len(world.reentrant_biometrics)} persons; {len(bans)} bans",
                  _fmt(problems))


def check_personal_data(world: World, obs: Observed) -> Result:
    names = {p.family_name for p in world.persons} | {p.given_names for p in world.persons}
    names |= {"Forged", "Sender", "Schema", "Broken"}
    dobs = {p.date_of_birth.isoformat() for p in world.persons if p.date_of_birth}
    dobs |= {a.date_of_birth.isoformat() for a in world.applications.values()}
    dobs |= {"1991-03-03", "1990-02-30"}
    biometrics = {p.biometric_id for p in world.persons} | {a.biometric_id for a in world.applications.values()}
    hexes, dates, words = re.compile(r"[0-9a-f]{64}"), re.compile(r"\d{4}-\d{2}-\d{2}"), re.compile(r"[A-Za-z]+")
    problems, scanned = [], 0
    for topic, recs in obs.records.items():
        if not topic.startswith("ops.") or topic == T.OPS_DEAD_LETTERS:
            continue
        for partition, offset, doc, raw in recs:
            scanned += 1
            text = raw.decode("utf-8", "replace")
            found = set(hexes.findall(text)) & biometrics
            found |= set(dates.findall(text)) & dobs
            for value in _strings(doc):
                found |= set(words.findall(value)) & names
            if found:
                problems.append(f"{topic}[{partition}]@{offset}: {sorted(found)[:3]}")
    return Result("no personal data on ops.* (except ops.dead-letters.v1)", not problems,
                  f"{scanned} records scanned for {len(names)} names, {len(dobs)} dates of birth, "
                  f"{len(biometrics)} biometric ids", _fmt(problems))


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# --------------------------------------------------------------------------- reports

COLUMNS = (("week", "week", 8), ("cap", "cap", 3), ("pairs", "pairs_formed", 5), ("req", "returns_requested", 4),
           ("acc", "returns_accepted", 4), ("ref", "returns_refused", 4), ("exec", "returns_executed", 4),
           ("offer", "admissions_offered", 5), ("arrvd", "admissions_arrived", 5),
           ("re-ent", "reentries_detected", 6), ("ill-wk", "illegal_working_matches", 6),
           ("cum.exec", "cumulative_returns_executed", 8), ("cum.off", "cumulative_admissions_offered", 7),
           ("paused", "admissions_paused", 6))


def weekly_table(obs: Observed) -> str:
    head = " ".join(f"{h:>{w}}" for h, _, w in COLUMNS)
    lines = [head, "-" * len(head)]
    for b in obs.latest_balance_per_week().values():
        cells = []
        for _, key, w in COLUMNS:
            v = b[key]
            cells.append(f"{('yes' if v else 'no') if isinstance(v, bool) else v:>{w}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def summary(world: World, obs: Observed) -> str:
    arrivals = list(world.arrivals.values())
    reentries = sum(1 for a in arrivals if a.reentrant)
    families = {a.family_group_ref for a in world.applications.values() if a.family_group_ref}
    letters = Counter(d["error_code"] for d in obs.first_of_each(T.OPS_DEAD_LETTERS))
    alerts = Counter(d["kind"] for d in obs.first_of_each(T.OPS_ALERTS))
    decisions = Counter(d["decision"] for d in obs.first_of_each(T.OPS_AUDIT))
    requests = _requests(obs)
    withdrawn = sum(1 for r in obs.first_of_each(T.LIAISON_UK_RETURN_REQUESTS)
                    if r["event_type"] == "ReturnRequestWithdrawn")
    bans = {d["biometric_id"] for d in obs.first_of_each(T.ENFORCEMENT_BANS)}
    profiles = Counter(a.profile for a in arrivals)
    sent = ", ".join(f"{k} {v}" for k, v in sorted(world.sent_types.items()))
    return "\n".join([
        f"arrivals      {len(arrivals)} ({reentries} re-entries; profiles: "
        + ", ".join(f"{k} {v}" for k, v in profiles.most_common()) + ")",
        f"applications  {len(world.applications)} ({len(families)} family groups, "
        f"{sum(1 for a in world.applications.values() if a.prior_arrival)} with an earlier boat arrival's biometric)",
        f"requests      {len(requests)} ReturnRequested, {withdrawn} withdrawn; "
        f"{len(obs.first_of_each(T.LIAISON_UK_ADMISSION_NOTICES))} AdmissionOffered",
        f"dead letters  {sum(letters.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(letters.items())),
        f"bans          {len(bans)} AsylumBanRecorded",
        "alerts        " + ", ".join(f"{k} {v}" for k, v in sorted(alerts.items())),
        "decisions     " + ", ".join(f"{k} {v}" for k, v in decisions.most_common()),
        f"sent          {sum(world.sent_types.values())} events + {len(world.bad)} bad messages + "
        f"{len(world.duplicates)} duplicates ({sent})",
    ])
