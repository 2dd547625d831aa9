"""The outside world of the exchange, simulated: Border Force, Home Office casework, the
admission portal, the French liaison, escorts, Immigration Enforcement and operators.

Everything it sends goes through the contract's inbound topics only, and everything it knows
of the system it learns from the outbound topics (`observe`). It keeps its own books of what it
sent, in event time, so the demo can check the system against them (deploy.sim.checks).

All randomness is seeded: the planned traffic (arrivals, casework, applications, enforcement,
operators, bad messages) comes from one `random.Random(seed)` drawn in event-time order, and
every reaction to the system (France, escorts, late blockers, re-entries) from a generator keyed
by the seed and the subject it is about, so reactions never shift the planned stream. Event ids
are derived from the seed, type, subject and time. The same seed sends the same planned events;
the system's answers can still differ in detail between runs, because the services read several
topics and partitions whose interleaving is not fixed, and the reactions follow those answers.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from shared import topics as T
from shared.signing import Keyring, sign
from shared.timeutil import LONDON, iso_week

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
SIM_START = datetime(2025, 9, 1, tzinfo=LONDON)  # a Monday
SIM_NAMESPACE = uuid.UUID("0b5e7d3c-2f61-4c8e-9a51-6d2f0c9e4b17")
DEFAULT_CAP = 50
PRIORITY = ("ERI", "AFG", "SDN")

FAMILY_NAMES = (
    "Abdi", "Ahmadzai", "Alizadeh", "Amanuel", "Babiker", "Barzani", "Berhane", "Dawit", "Durrani",
    "Elmi", "Faraji", "Ghebre", "Habte", "Hakimi", "Haidari", "Hussaini", "Jalali", "Kahsay",
    "Karimi", "Kebede", "Mahmoudi", "Mengistu", "Mirzaei", "Mohamud", "Nazari", "Osman", "Popalzai",
    "Qaderi", "Rahimi", "Rezaei", "Saberi", "Sadiqi", "Shinwari", "Tesfaye", "Tekle", "Yousefi",
    "Zerihun", "Zadran", "Nguyen", "Tran", "Hoxha", "Krasniqi", "Barzinji", "Talabani", "Darwish",
)
GIVEN_NAMES = (
    "Abdullah", "Ahmad", "Amanuel", "Aziz", "Bereket", "Dawood", "Ermias", "Farhad", "Filmon",
    "Habib", "Hamid", "Hassan", "Idris", "Jamal", "Kamal", "Kidane", "Mahdi", "Merhawi", "Mohsen",
    "Musa", "Nasir", "Omid", "Rahel", "Reza", "Saeed", "Samira", "Senait", "Shirin", "Tahir",
    "Tesfalem", "Yonas", "Yusuf", "Zahra", "Zainab", "Minh", "Quang", "Arben", "Dritan", "Karwan",
    "Rebin", "Soran", "Ayaan", "Halima", "Mariam", "Nadia",
)
ARRIVAL_NATIONALITIES = (("AFG", 16), ("ERI", 12), ("IRN", 12), ("IRQ", 12), ("SDN", 10), ("SYR", 10),
                         ("VNM", 8), ("ALB", 5), ("SOM", 5), ("ETH", 4), ("KWT", 2), ("EGY", 4))
APPLICANT_NATIONALITIES = (("ERI", 12), ("AFG", 12), ("SDN", 10), ("SYR", 14), ("IRQ", 10), ("IRN", 10),
                           ("SOM", 8), ("YEM", 8), ("SSD", 6), ("ETH", 6), ("LBY", 4))
LANDING_POINTS = ("Dover", "Folkestone", "Ramsgate", "Dungeness", "Deal", "Hythe")

# How arrivals' cases go (weights). "late" blockers come after a request went out (observe()).
PROFILES = (
    ("plain", 50), ("asylum_withdrawn", 8), ("asylum_inadmissible", 8), ("asylum_admitted", 4),
    ("asylum_pending", 4), ("minor_assessed_adult", 5), ("minor_confirmed", 3), ("protection", 6),
    ("challenge", 4), ("absconder", 4), ("not_from_france", 2), ("rescued_plain", 2),
)


def _pick(rng: random.Random, weighted) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights)[0]


def ts(dt: datetime) -> str:
    return dt.isoformat()


# --------------------------------------------------------------------------- the books

@dataclass
class Blocker:
    """Something that makes a case not returnable, as the simulation sent it.

    `visible_from`: the end of the step that sent it. Inside one step the system reads several
    topics in no fixed order, so it may rightly act before it has read the blocker; from the
    step's end (after the settle barrier) it has certainly read it."""

    kind: str  # minor | asylum | not_from_france | protection | challenge | absconded
    ref: str
    opened_at: datetime
    visible_from: datetime
    resolved_at: datetime | None = None
    outcome: str | None = None
    resolved_visible: datetime | None = None  # the end of the step that sent the resolution

    def open_at(self, t: datetime) -> bool:
        return self.opened_at <= t and (self.resolved_at is None or self.resolved_at > t)


@dataclass
class Person:
    pid: int
    biometric_id: str
    family_name: str
    given_names: str
    date_of_birth: date | None
    nationality: str
    arrivals: list[str] = field(default_factory=list)
    returned_by: list[str] = field(default_factory=list)  # executed request ids (confirmed)


@dataclass
class Arrival:
    arrival_id: str
    person: Person
    landed_at: datetime
    recorded_at: datetime
    departed_from: str
    claimed_minor: bool
    asylum_claimed: bool
    reentrant: bool
    profile: str
    blockers: list[Blocker] = field(default_factory=list)
    upheld_at: datetime | None = None
    requests: list[str] = field(default_factory=list)
    sent: bool = False

    def open_blockers(self, t: datetime) -> list[Blocker]:
        return [b for b in self.blockers if b.open_at(t)]

    def absconded_now(self) -> bool:
        return any(b.kind == "absconded" and b.resolved_at is None for b in self.blockers)


@dataclass
class Application:
    application_id: str
    family_group_ref: str | None
    nationality: str
    date_of_birth: date
    biometric_id: str
    submitted_at: datetime
    verified: bool
    prior_arrival: str | None = None  # the earlier boat arrival whose biometric this is
    offered: bool = False
    withdrawn: bool = False


@dataclass
class Request:
    request_id: str
    arrival_id: str
    requested_at: datetime
    week: str
    landed_at_on_wire: datetime
    answered: str | None = None  # accepted | refused (as the system decided it)
    ended: str | None = None  # executed | refused | lapsed | failed | withdrawn
    ended_at: datetime | None = None
    holds: list[tuple[datetime, str]] = field(default_factory=list)  # (when, held | hold_lifted)
    withdrawn_on_wire: bool = False

    @property
    def held(self) -> bool:
        """Ever held."""
        return any(kind == "held" for _, kind in self.holds)

    @property
    def on_hold(self) -> bool:
        return bool(self.holds) and self.holds[-1][1] == "held"

    def on_hold_at(self, t: datetime) -> bool:
        state = False
        for when, kind in self.holds:
            if when <= t:
                state = kind == "held"
        return state


@dataclass
class BadMessage:
    label: str
    topic: str
    expected_code: str
    subject: str | None  # an id inside it that must never be acted on
    partition: int | None = None
    offset: int | None = None


@dataclass
class Out:
    """One record to publish. headers None: sign with the dev key for the topic."""

    at: datetime
    topic: str
    key: str | None
    value: bytes
    event_type: str
    headers: dict[str, str] | None = None
    bad: BadMessage | None = None
    duplicate_of: str | None = None


# --------------------------------------------------------------------------- the world

class World:
    def __init__(self, seed: int, keyring: Keyring, days: int = 42, start: datetime = SIM_START):
        self.seed = seed
        self.rng = random.Random(seed)  # the planned traffic only
        self._ids: Counter = Counter()
        self.keyring = keyring
        self.start = start
        self.days = days
        self.end = start + days * DAY
        self._queue: list[tuple[datetime, int, bool, Callable, tuple]] = []
        self._seq = 0
        self.outbox: list[Out] = []
        self.step_end: datetime = start
        # books
        self.persons: list[Person] = []
        self.arrivals: dict[str, Arrival] = {}
        self.applications: dict[str, Application] = {}
        self.requests: dict[str, Request] = {}
        self.bad: list[BadMessage] = []
        self.duplicates: dict[str, tuple[str, str | None]] = {}  # event_id -> (type, subject), sent twice
        self.sent_types: Counter = Counter()
        self.caps_set: dict[str, list[tuple[datetime, int]]] = defaultdict(list)  # week -> [(at, cap)]
        self.pauses: list[tuple[datetime, datetime | None]] = []
        self.reentrant_biometrics: set[str] = set()
        self._dup_budget = Counter({"ArrivalRecorded": 5, "ExpressionOfInterestSubmitted": 2,
                                    "ApplicationVetted": 1, "ReturnRequestAnswered": 2, "ReturnExecuted": 2})
        self._n = Counter()
        # what the system told us
        self.executed_requests: set[str] = set()
        self.offers_seen: set[str] = set()
        self.accepted_seen: set[str] = set()

    # ---- ids, scheduling, sending ---------------------------------------------------------
    def rx(self, *parts: object) -> random.Random:
        """A generator for one reaction, keyed by what it is about (str seeds hash stably)."""
        return random.Random("|".join([str(self.seed), *map(str, parts)]))

    def event_id(self, event_type: str, subject: object, when: datetime) -> str:
        name = f"{self.seed}|{event_type}|{subject}|{when.isoformat()}"
        self._ids[name] += 1
        return str(uuid.uuid5(SIM_NAMESPACE, f"{name}|{self._ids[name]}"))

    def next_id(self, prefix: str, width: int = 5) -> str:
        self._n[prefix] += 1
        return f"{prefix}{self._n[prefix]:0{width}d}"

    def at(self, when: datetime, fn: Callable, *args: Any, control: bool = False) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, control, fn, args))

    def run_due(self, until: datetime, control: bool | None = None) -> list[Out]:
        """Run the actions due before `until` (control ones only, or the others), in time order;
        returns what they sent, in time order."""
        kept = []
        while self._queue and self._queue[0][0] < until:
            item = heapq.heappop(self._queue)
            if control is not None and item[2] != control:
                kept.append(item)
                continue
            when, _, _, fn, args = item
            fn(when, *args)  # may schedule more, due now or later
        for item in kept:
            heapq.heappush(self._queue, item)
        out, self.outbox = self.outbox, []
        out.sort(key=lambda o: o.at)
        return out

    def event(self, event_type: str, when: datetime, producer: str, **fields: Any) -> dict:
        subject = next((fields[k] for k in ("arrival_id", "application_id", "request_id", "report_id", "week")
                        if k in fields), producer)
        return {"event_id": self.event_id(event_type, subject, when), "event_type": event_type,
                "occurred_at": ts(when), "producer": producer, **fields}

    def emit(self, topic: str, key: str | None, doc: dict, when: datetime, *, dup_ok: bool = True) -> None:
        value = json.dumps(doc, separators=(",", ":")).encode()
        self.outbox.append(Out(when, topic, key, value, doc["event_type"]))
        self.sent_types[doc["event_type"]] += 1
        etype = doc["event_type"]
        pick = self.rx("duplicate", doc["event_id"])
        if dup_ok and self._dup_budget[etype] > 0 and pick.random() < 0.06:
            self._dup_budget[etype] -= 1
            subject = next((doc[k] for k in ("arrival_id", "application_id", "request_id") if k in doc), None)
            self.duplicates[doc["event_id"]] = (etype, subject)
            delay = pick.choice((timedelta(0), DAY, 2 * DAY))
            if delay:
                self.at(when + delay, self._resend, topic, key, value, etype, doc["event_id"])
            else:
                self.outbox.append(Out(when, topic, key, value, etype, duplicate_of=doc["event_id"]))

    def _resend(self, when: datetime, topic: str, key: str | None, value: bytes, etype: str, event_id: str) -> None:
        self.outbox.append(Out(when, topic, key, value, etype, duplicate_of=event_id))

    # ---- the calendar ------------------------------------------------------------------------
    def plan(self) -> None:
        """Everything that does not depend on the system's answers, day by day."""
        for d in range(self.days):
            self.at(self.start + d * DAY, self._plan_day, d)
        # operators: one week's cap lowered mid-week, admissions paused once and resumed
        self.at(datetime(2025, 9, 17, 6, 5, tzinfo=LONDON), self._cap, "2025-W38", 30, control=True)
        self.at(datetime(2025, 10, 3, 12, 5, tzinfo=LONDON), self._pause, control=True)
        self.at(datetime(2025, 10, 6, 6, 5, tzinfo=LONDON), self._resume, control=True)
        # a handful of bad messages
        for day, hour, label in ((2, 10, "not_json"), (4, 14, "unknown_type"), (6, 9, "schema_arrival"),
                                 (9, 16, "bad_mac"), (11, 11, "type_on_wrong_topic"), (13, 15, "schema_eoi"),
                                 (16, 8, "unknown_key"), (19, 13, "unauthorised_producer"),
                                 (23, 10, "no_signature"), (27, 17, "not_json_movements")):
            self.at(self.start + d_(day, hour), self._bad_message, label)

    def _plan_day(self, d0: datetime, d: int) -> None:
        rng = self.rng
        # Border Force: 30-60 a day, on 1-4 boats
        n = rng.randint(30, 60)
        boats = rng.randint(1, 4)
        cuts = sorted(rng.sample(range(1, n), boats - 1)) if boats > 1 else []
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
        for b, size in enumerate(sizes, 1):
            landed = d0 + timedelta(hours=rng.uniform(0.5, 20))
            vessel = f"SB-{d0:%m%d}-{b}"
            point = rng.choice(LANDING_POINTS)
            rescued = rng.random() < 0.3
            for _ in range(size):
                recorded = landed + timedelta(hours=rng.uniform(0.3, 3.5))
                self.at(recorded, self._arrive, self._new_person(), landed, point, vessel, rescued, None)
        # the admission portal: 20-40 expressions of interest a day, some family groups
        n_eoi = rng.randint(20, 40)
        made = 0
        while made < n_eoi:
            when = d0 + timedelta(hours=rng.uniform(0, 24))
            if rng.random() < 0.08:
                k = rng.randint(2, 4)
                self.at(when, self._family_eoi, k)
                made += k
            else:
                self.at(when, self._eoi, None, None, None)
                made += 1
        # Immigration Enforcement, now and then
        if rng.random() < 0.4:
            self.at(d0 + timedelta(hours=rng.uniform(6, 22)), self._illegal_working)

    # ---- people ------------------------------------------------------------------------------
    def _new_person(self, *, minor: bool = False, nationality: str | None = None) -> Person:
        rng = self.rng
        pid = len(self.persons) + 1
        if minor:
            dob = date(rng.randint(2008, 2010), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.7 else None
        else:
            dob = date(rng.randint(1965, 2006), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.93 else None
        p = Person(pid, hashlib.sha256(f"sim-person-{pid}-{rng.random()}".encode()).hexdigest(),
                   rng.choice(FAMILY_NAMES), rng.choice(GIVEN_NAMES), dob,
                   nationality or _pick(rng, ARRIVAL_NATIONALITIES))
        self.persons.append(p)
        return p

    # ---- Border Force and casework -----------------------------------------------------------
    def _arrive(self, when: datetime, person: Person, landed: datetime, point: str, vessel: str,
                rescued: bool, reentry_of: str | None) -> None:
        rng = self.rx("reentry", reentry_of) if reentry_of else self.rng
        reentrant = bool(person.returned_by)
        profile = "reentry" if reentrant else _pick(rng, PROFILES)
        if profile in ("minor_assessed_adult", "minor_confirmed") and person.date_of_birth is not None:
            person.date_of_birth = date(rng.randint(2008, 2010), rng.randint(1, 12), rng.randint(1, 28))
        claimed_minor = profile in ("minor_assessed_adult", "minor_confirmed")
        # a returned person who comes back often claims asylum: the claim no longer blocks them
        asylum = profile.startswith("asylum") or (profile == "reentry" and rng.random() < 0.6)
        departed = rng.choice(("BEL", "NLD", "DEU")) if profile == "not_from_france" else "FRA"
        arrival_id = f"{reentry_of}-R" if reentry_of else self.next_id("BF-25-")
        arrival = Arrival(arrival_id, person, landed, when, departed, claimed_minor, asylum, reentrant, profile)
        self.arrivals[arrival.arrival_id] = arrival
        person.arrivals.append(arrival.arrival_id)
        if reentrant:
            self.reentrant_biometrics.add(person.biometric_id)
        if claimed_minor:
            arrival.blockers.append(Blocker("minor", "claimed", when, when))
        if asylum and not reentrant:
            arrival.blockers.append(Blocker("asylum", "claim", when, when))
        if departed != "FRA":
            arrival.blockers.append(Blocker("not_from_france", departed, when, when))
        doc = self.event("ArrivalRecorded", when, "border-force-terminal-07",
                         arrival_id=arrival.arrival_id, biometric_id=person.biometric_id,
                         family_name=person.family_name, given_names=person.given_names,
                         date_of_birth=person.date_of_birth.isoformat() if person.date_of_birth else None,
                         nationality=person.nationality, claimed_minor=claimed_minor, landed_at=ts(landed),
                         landing_point=point, vessel_ref=vessel, departed_from=departed,
                         rescued_at_sea=rescued or profile == "rescued_plain", asylum_claimed=asylum)
        self.emit(T.BORDER_ARRIVALS, arrival.arrival_id, doc, when, dup_ok=not reentry_of)
        arrival.sent = True
        self._plan_casework(arrival)

    def _plan_casework(self, a: Arrival) -> None:
        rng, t = self.rng, a.recorded_at
        days = lambda lo, hi: t + timedelta(days=rng.uniform(lo, hi))  # noqa: E731
        if a.profile == "asylum_withdrawn":
            self.at(days(1, 6), self._asylum_decided, a, "withdrawn")
        elif a.profile == "asylum_inadmissible":
            self.at(days(2, 8), self._asylum_decided, a, "inadmissible")
        elif a.profile == "asylum_admitted":
            self.at(days(3, 10), self._asylum_decided, a, "admitted_for_consideration")
        elif a.profile == "minor_assessed_adult":
            self.at(days(2, 7), self._age_assessed, a, False)
        elif a.profile == "minor_confirmed":
            self.at(days(2, 7), self._age_assessed, a, True)
        elif a.profile == "protection":
            self.at(days(0.5, 3), self._open_claim, a, "protection")
        elif a.profile == "challenge":
            self.at(days(0.5, 3), self._open_claim, a, "challenge")
        elif a.profile == "absconder":
            self.at(days(0.5, 4), self._abscond, a)

    def _casework(self, a: Arrival, event_type: str, when: datetime, **fields: Any) -> None:
        doc = self.event(event_type, when, "home-office-casework", arrival_id=a.arrival_id, **fields)
        self.emit(T.CASEWORK_UPDATES, a.arrival_id, doc, when)

    def _asylum_decided(self, when: datetime, a: Arrival, outcome: str) -> None:
        self._casework(a, "AsylumClaimDecided", when, outcome=outcome)
        if outcome in ("withdrawn", "inadmissible"):
            for b in a.blockers:
                if b.kind == "asylum" and b.resolved_at is None:
                    b.resolved_at, b.outcome = when, outcome

    def _age_assessed(self, when: datetime, a: Arrival, minor: bool) -> None:
        self._casework(a, "AgeAssessed", when, assessed_minor=minor)
        if not minor:
            for b in a.blockers:
                if b.kind == "minor" and b.resolved_at is None:
                    b.resolved_at, b.outcome = when, "assessed_adult"

    def _open_claim(self, when: datetime, a: Arrival, kind: str, late: bool = False) -> None:
        rng = self.rx("claim", a.arrival_id, len(a.blockers))
        if late and self._request_over(a):
            return  # removed already, or the request is gone: nothing to challenge
        if kind == "protection":
            ref = f"PC-{a.arrival_id}-{len(a.blockers) + 1}"
            self._casework(a, "ProtectionClaimLodged", when, claim_id=ref,
                           kind=rng.choice(("human_rights", "trafficking", "further_submissions")))
        else:
            ref = f"LC-{a.arrival_id}-{len(a.blockers) + 1}"
            self._casework(a, "LegalChallengeFiled", when, challenge_id=ref,
                           kind=rng.choice(("judicial_review", "injunction", "appeal")))
        a.blockers.append(Blocker(kind, ref, when, self.step_end))
        r = rng.random()
        outcome = "against" if r < 0.75 else "upheld" if r < 0.90 else None
        if outcome:
            self.at(when + timedelta(days=rng.uniform(2, 10)), self._resolve_claim, a, kind, ref, outcome)

    def _resolve_claim(self, when: datetime, a: Arrival, kind: str, ref: str, outcome: str) -> None:
        if kind == "protection":
            wire = "refused" if outcome == "against" else "upheld"
            self._casework(a, "ProtectionClaimResolved", when, claim_id=ref, outcome=wire)
        else:
            wire = "dismissed" if outcome == "against" else "upheld"
            self._casework(a, "LegalChallengeDecided", when, challenge_id=ref, outcome=wire)
        for b in a.blockers:
            if b.ref == ref:
                b.resolved_at, b.outcome, b.resolved_visible = when, wire, self.step_end
        if wire == "upheld" and a.upheld_at is None:
            a.upheld_at = when

    def _abscond(self, when: datetime, a: Arrival, late: bool = False) -> None:
        if a.absconded_now() or (late and self._request_over(a)):
            return
        self._casework(a, "PersonAbsconded", when)
        self._note_abscond(a, when, self.rx("abscond", a.arrival_id, len(a.blockers)))

    def _note_abscond(self, a: Arrival, when: datetime, rng: random.Random) -> None:
        a.blockers.append(Blocker("absconded", f"ABS-{a.arrival_id}-{len(a.blockers) + 1}", when, self.step_end))
        if rng.random() < 0.7:
            self.at(when + timedelta(days=rng.uniform(2, 8)), self._detain, a)

    def _detain(self, when: datetime, a: Arrival) -> None:
        if not a.absconded_now():
            return
        self._casework(a, "PersonDetained", when)
        for b in a.blockers:
            if b.kind == "absconded" and b.resolved_at is None:
                b.resolved_at, b.outcome = when, "detained"

    def _request_over(self, a: Arrival) -> bool:
        live = [self.requests[r] for r in a.requests if r in self.requests and self.requests[r].ended is None]
        return not live

    # ---- the admission portal ----------------------------------------------------------------
    def _eoi(self, when: datetime, family: str | None, dob: date | None, nationality: str | None) -> None:
        rng = self.rng
        app_id = self.next_id("EOI-", 5)
        nationality = nationality or _pick(rng, APPLICANT_NATIONALITIES)
        dob = dob or date(rng.randint(1968, 2006), rng.randint(1, 12), rng.randint(1, 28))
        verified = rng.random() < 0.97
        biometric = hashlib.sha256(f"sim-applicant-{app_id}-{rng.random()}".encode()).hexdigest()
        prior = None
        earlier = [a for a in self.arrivals.values() if not a.reentrant]
        if family is None and earlier and rng.random() < 0.03:
            prior_arrival = rng.choice(earlier)
            prior, biometric = prior_arrival.arrival_id, prior_arrival.person.biometric_id
        submitted = when - timedelta(minutes=rng.uniform(1, 90))
        app = Application(app_id, family, nationality, dob, biometric, submitted, verified, prior)
        self.applications[app_id] = app
        doc = self.event("ExpressionOfInterestSubmitted", when, "admission-portal", application_id=app_id,
                         family_group_ref=family, nationality=nationality, date_of_birth=dob.isoformat(),
                         located_in_france_verified=verified, submitted_at=ts(submitted))
        self.emit(T.ADMISSIONS_APPLICATIONS, app_id, doc, when)
        if verified:
            self.at(when + timedelta(days=rng.uniform(0.7, 1.5)), self._vet, app)
        if family is None and rng.random() < 0.03:
            self.at(when + timedelta(days=rng.uniform(2, 12)), self._withdraw_application, app)

    def _family_eoi(self, when: datetime, k: int) -> None:
        rng = self.rng
        ref = self.next_id("FAM-", 4)
        nationality = _pick(rng, APPLICANT_NATIONALITIES)
        for i in range(k):
            if i < 2:
                dob = date(rng.randint(1975, 1998), rng.randint(1, 12), rng.randint(1, 28))
            else:
                dob = date(rng.randint(2010, 2021), rng.randint(1, 12), rng.randint(1, 28))
            self._eoi(when + i * MINUTE, ref, dob, nationality)

    def _vet(self, when: datetime, app: Application) -> None:
        outcome = "refused" if self.rng.random() < 0.08 else "clear"
        doc = self.event("ApplicationVetted", when, "paris-visa-centre", application_id=app.application_id,
                         biometric_id=app.biometric_id, security_outcome=outcome)
        self.emit(T.ADMISSIONS_APPLICATIONS, app.application_id, doc, when)

    def _withdraw_application(self, when: datetime, app: Application) -> None:
        if app.application_id in self.offers_seen:
            return
        app.withdrawn = True
        doc = self.event("ApplicationWithdrawn", when, "admission-portal", application_id=app.application_id)
        self.emit(T.ADMISSIONS_APPLICATIONS, app.application_id, doc, when)

    # ---- Immigration Enforcement -------------------------------------------------------------
    def _illegal_working(self, when: datetime) -> None:
        rng = self.rng
        r = rng.random()
        planned = [a for a in self.arrivals.values() if not a.reentrant]
        if r < 0.6 and planned:
            biometric = rng.choice(planned).person.biometric_id
        elif r < 0.85 and self.applications:
            biometric = rng.choice(list(self.applications.values())).biometric_id
        else:
            biometric = hashlib.sha256(f"sim-unknown-{rng.random()}".encode()).hexdigest()
        doc = self.event("IllegalWorkingEncounter", when, "immigration-enforcement",
                         report_id=self.next_id("IWE-", 4), biometric_id=biometric,
                         employer_ref=f"EMP-{rng.randint(100, 999)}")
        self.emit(T.ENFORCEMENT_ILLEGAL_WORKING, doc["report_id"], doc, when)

    # ---- operators ---------------------------------------------------------------------------
    def _cap(self, when: datetime, week: str, cap: int) -> None:
        doc = self.event("WeeklyCapSet", when, "ops-console", week=week, cap=cap)
        self.emit(T.OPS_CONTROL, week, doc, when)
        self.caps_set[week].append((when, cap))

    def _pause(self, when: datetime) -> None:
        doc = self.event("AdmissionsPaused", when, "ops-console", reason="Joint Committee review")
        self.emit(T.OPS_CONTROL, "admissions", doc, when)
        self.pauses.append((when, None))

    def _resume(self, when: datetime) -> None:
        doc = self.event("AdmissionsResumed", when, "ops-console", reason="review complete")
        self.emit(T.OPS_CONTROL, "admissions", doc, when)
        self.pauses[-1] = (self.pauses[-1][0], when)

    def tick(self, when: datetime) -> Out:
        doc = self.event("ClockTick", when, "ops-clock")
        self.sent_types["ClockTick"] += 1
        return Out(when, T.OPS_CONTROL, "clock", json.dumps(doc, separators=(",", ":")).encode(), "ClockTick")

    def cap_in_force(self, week: str, t: datetime) -> int:
        cap = DEFAULT_CAP
        for when, value in self.caps_set.get(week, ()):
            if when <= t:
                cap = value
        return cap

    def paused_at(self, t: datetime) -> bool:
        return any(p <= t and (r is None or t < r) for p, r in self.pauses)

    # ---- bad messages ------------------------------------------------------------------------
    def _bad_message(self, when: datetime, label: str) -> None:
        rng = self.rng
        subject = None
        headers: dict[str, str] | None = None
        if label in ("not_json", "not_json_movements"):
            topic = T.BORDER_ARRIVALS if label == "not_json" else T.TRANSFERS_MOVEMENTS
            value, code = b'{"event_type": "ArrivalRecorded", "arrival_id": "BF-TRUNC', "not_json"
        elif label == "unknown_type":
            topic, code = T.BORDER_ARRIVALS, "unknown_type"
            subject = "BF-CANCELLED-1"
            value = json.dumps(self.event("ArrivalCancelled", when, "border-force-terminal-07",
                                          arrival_id=subject)).encode()
        elif label == "type_on_wrong_topic":
            topic, code = T.CASEWORK_UPDATES, "unknown_type"
            value = json.dumps(self.event("ReturnExecuted", when, "home-office-casework",
                                          request_id="REQ-NOT-HERE", flight_ref="FL-0")).encode()
        elif label == "schema_arrival":
            topic, code = T.BORDER_ARRIVALS, "schema"
            subject = "BF-SCHEMA-1"
            doc = self.event("ArrivalRecorded", when, "border-force-terminal-07", arrival_id=subject,
                             family_name="Schema", given_names="Broken", date_of_birth="1990-02-30",
                             nationality="France", claimed_minor="no", landed_at=ts(when),
                             landing_point="Dover", vessel_ref="SB-X", departed_from="FRA",
                             rescued_at_sea=False, asylum_claimed=False)  # no biometric_id
            value = json.dumps(doc).encode()
        elif label == "schema_eoi":
            topic, code = T.ADMISSIONS_APPLICATIONS, "schema"
            subject = "EOI-SCHEMA-1"
            value = json.dumps(self.event("ExpressionOfInterestSubmitted", when, "admission-portal",
                                          application_id=subject, family_group_ref=None, nationality="ERI",
                                          date_of_birth="yesterday", located_in_france_verified=True,
                                          submitted_at=ts(when), extra_field=1)).encode()
        else:
            # a well-formed arrival that must never be acted on: forged or unsigned
            subject = f"BF-FORGED-{label}"
            p = self._new_person()
            self.persons.pop()  # not a real person of the simulation
            doc = self.event("ArrivalRecorded", when, "unknown", arrival_id=subject, biometric_id=p.biometric_id,
                             family_name="Forged", given_names="Sender", date_of_birth="1991-03-03",
                             nationality="IRQ", claimed_minor=False, landed_at=ts(when - HOUR),
                             landing_point="Dover", vessel_ref="SB-FAKE", departed_from="FRA",
                             rescued_at_sea=False, asylum_claimed=False)
            value = json.dumps(doc).encode()
            topic, code = T.BORDER_ARRIVALS, "signature"
            if label == "bad_mac":
                headers = {"x-key-id": "border-force-terminals", "x-signature": sign(b"not-the-secret", value)}
            elif label == "unknown_key":
                headers = {"x-key-id": "border-force-backdoor", "x-signature": sign(b"whatever", value)}
            elif label == "no_signature":
                headers = {}
            elif label == "unauthorised_producer":
                topic, code, subject = T.OPS_CONTROL, "unauthorised_producer", None
                value = json.dumps(self.event("WeeklyCapSet", when, "border-force-terminal-07",
                                              week="2025-W40", cap=500)).encode()
                key = self.keyring.key_for_topic(T.BORDER_ARRIVALS)
                headers = {"x-key-id": key.key_id, "x-signature": sign(key.secret, value)}
        bad = BadMessage(label, topic, code, subject)
        self.bad.append(bad)
        self.outbox.append(Out(when, topic, subject or label, value, "bad:" + label, headers=headers, bad=bad))

    # ---- reactions to what the system published --------------------------------------------
    def observe(self, topic: str, doc: dict) -> None:
        etype = doc.get("event_type")
        if topic == T.LIAISON_UK_RETURN_REQUESTS:
            if etype == "ReturnRequested":
                self._seen_request(doc)
            elif etype == "ReturnRequestWithdrawn":
                req = self.requests.get(doc["request_id"])
                if req is not None:
                    req.withdrawn_on_wire = True
                    self._end(req, "withdrawn", _t(doc["occurred_at"]))
        elif topic == T.LIAISON_UK_ADMISSION_NOTICES and etype == "AdmissionOffered":
            app_id = doc["application_id"]
            if app_id not in self.offers_seen:
                self.offers_seen.add(app_id)
                if app_id in self.applications:
                    self.applications[app_id].offered = True
                rng = self.rx("admission", app_id)
                if rng.random() < 0.9:
                    self.at(_t(doc["occurred_at"]) + timedelta(days=rng.uniform(2, 7)), self._admit, app_id)
        elif topic == T.OPS_AUDIT and etype == "Decision":
            self._seen_decision(doc)

    def _seen_request(self, doc: dict) -> None:
        rid = doc["request_id"]
        if rid in self.requests:
            return
        when = _t(doc["occurred_at"])
        req = Request(rid, doc["arrival_id"], when, doc["week"], _t(doc["landed_at"]))
        self.requests[rid] = req
        a = self.arrivals.get(req.arrival_id)
        if a is not None:
            a.requests.append(rid)
        rng = self.rx("france", rid)
        # the French liaison
        r = rng.random()
        if r < 0.80:
            self.at(when + timedelta(days=rng.uniform(1, 10)), self._answer, rid, "accepted", None)
        elif r < 0.92:
            self.at(when + timedelta(days=rng.uniform(1, 10)), self._answer, rid, "refused",
                    rng.choice(("not_identified", "insufficient_evidence", "already_in_procedure")))
        # else: silence, the request lapses at day 28
        # Home Office casework: a few blockers open after the request went out (holds)
        if a is not None and rng.random() < 0.10:
            kind = rng.choice(("protection", "protection", "challenge", "challenge", "absconded"))
            later = when + timedelta(days=rng.uniform(0.3, 3))
            if kind == "absconded":
                self.at(later, self._abscond, a, True)
            else:
                self.at(later, self._open_claim, a, kind, True)

    def _answer(self, when: datetime, rid: str, decision: str, reason: str | None) -> None:
        req = self.requests[rid]
        if req.ended is not None:
            return  # withdrawn (or lapsed): France no longer answers
        doc = self.event("ReturnRequestAnswered", when, "french-liaison", request_id=rid, decision=decision,
                         reason_code=reason)
        self.emit(T.LIAISON_FR_DECISIONS, rid, doc, when)

    def _seen_decision(self, doc: dict) -> None:
        subject, decision, when = doc["subject_ref"], doc["decision"], _t(doc["occurred_at"])
        req = self.requests.get(subject)
        if req is None:
            return
        if decision == "accepted" and subject not in self.accepted_seen:
            self.accepted_seen.add(subject)
            req.answered = "accepted"
            self.at(when + timedelta(days=self.rx("escort", subject).uniform(1, 5)), self._escort, subject, 0)
        elif decision == "refused":
            req.answered = req.answered or "refused"
            self._end(req, "lapsed" if "reply_lapsed" in doc["reasons"] else "refused", when)
        elif decision == "executed":
            self._end(req, "executed", when)
            if subject not in self.executed_requests:
                self.executed_requests.add(subject)
                a = self.arrivals.get(req.arrival_id)
                if a is not None:
                    a.person.returned_by.append(subject)
                    rng = self.rx("comes-back", subject)
                    if rng.random() < 0.22:
                        back = when + timedelta(days=rng.uniform(3, 12))
                        self.at(back, self._reenter, a)
        elif decision == "failed":
            self._end(req, "failed", when)
        elif decision == "withdrawn":
            self._end(req, "withdrawn", when)
        elif decision in ("held", "hold_lifted"):
            req.holds.append((when, decision))

    @staticmethod
    def _end(req: Request, how: str, when: datetime) -> None:
        if req.ended is None:
            req.ended, req.ended_at = how, when

    def _escort(self, when: datetime, rid: str, postponed: int) -> None:
        req = self.requests[rid]
        if req.ended is not None:
            return
        a = self.arrivals.get(req.arrival_id)
        if (a is not None and a.open_blockers(when)) or req.on_hold:
            # on hold (a claim, a challenge, absconded): escorts wait until the blocker is
            # resolved and the system has lifted the hold
            if postponed < 30 and (a is None or a.upheld_at is None):
                self.at(when + DAY, self._escort, rid, postponed + 1)
            return
        rng = self.rx("escort", rid, postponed)
        if rng.random() < 0.07:
            reason = rng.choice(("absconded", "medical", "disruption", "refused_boarding"))
            doc = self.event("ReturnFailed", when, "escort-teams", request_id=rid, reason=reason)
            self.emit(T.TRANSFERS_MOVEMENTS, rid, doc, when)
            if reason == "absconded" and a is not None and not a.absconded_now():
                self._note_abscond(a, when, rng)
        else:
            doc = self.event("ReturnExecuted", when, "escort-teams", request_id=rid,
                             flight_ref=f"FL-CQF-{when:%m%d}-{rng.randint(1, 3)}")
            self.emit(T.TRANSFERS_MOVEMENTS, rid, doc, when)

    def _admit(self, when: datetime, app_id: str) -> None:
        doc = self.event("AdmissionArrived", when, "escort-teams", application_id=app_id)
        self.emit(T.TRANSFERS_MOVEMENTS, app_id, doc, when)

    def _reenter(self, when: datetime, previous: Arrival) -> None:
        rng = self.rx("reentry-landing", previous.arrival_id)
        landed = when - timedelta(hours=rng.uniform(0.5, 3))
        self._arrive(when, previous.person, landed, rng.choice(LANDING_POINTS), f"SB-{landed:%m%d}-R",
                     False, previous.arrival_id)


def d_(day: int, hour: float) -> timedelta:
    return day * DAY + timedelta(hours=hour)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
