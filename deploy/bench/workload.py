"""The bench's traffic: the small-boat history of 2018-2025, scaled to any size, as signed-ready
(topic, key, value) records in event-time order.

Arrivals per year are the published totals (192,633 in all). Each year's arrivals are spread
over its days the way crossings happen: many days with none (weather), the rest lumpy (a
heavy-tailed draw), no day above 1,300. Around them, in proportion: casework on about a
quarter of the cases, expressions of interest and vetting from the scheme's start (about one
application per twelve arrivals), French answers and escorts' movements (about one per forty
arrivals; they name requests the replay never formed, so matching audits them as ignored:
what a replay of another region's history would do, and the same work per event), one
ClockTick per day with traffic, and WeeklyCapSet 50 for every week of the scheme.

Everything is seeded: the same size gives the same records. Event times are UTC, inside
2018-2025, so before the wall clock and inside the contract's range.
"""
from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from shared import topics as T
from shared.timeutil import iso_week

YEARS: dict[int, int] = {2018: 299, 2019: 1843, 2020: 8466, 2021: 28526, 2022: 45774,
                         2023: 29437, 2024: 36816, 2025: 41472}
HISTORY = sum(YEARS.values())  # 192,633
PEAK_DAY = 1300
SCHEME_START = date(2025, 8, 6)
CAP = 50
NS = uuid.UUID("5b0c7e2a-91d4-4f3e-8a6b-2c1d0e9f8a77")
UTC = timezone.utc
CASEWORK_SHARE = 0.25
APPLICATION_SHARE = 1 / 12  # of the arrivals after the scheme's start
ANSWER_SHARE = 1 / 40
NATIONALITIES = ("AFG", "ERI", "IRN", "IRQ", "SDN", "SYR", "VNM", "ALB")

Record = tuple[str, str, bytes]


@dataclass(frozen=True)
class Timed:
    at: datetime
    seq: int
    record: Record


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, "|".join(map(str, parts))))


def doc(event_type: str, when: datetime, subject: str, **fields) -> bytes:
    return json.dumps({"event_id": _id(event_type, subject, when.isoformat()), "event_type": event_type,
                       "occurred_at": when.isoformat(), "producer": "bench", **fields},
                      separators=(",", ":")).encode()


def biometric(kind: str, i: object) -> str:
    return hashlib.sha256(f"bench-{kind}-{i}".encode()).hexdigest()


def arrival(arrival_id: str, when: datetime, vessel: str, nationality: str = "IRQ") -> Record:
    return T.BORDER_ARRIVALS, arrival_id, doc(
        "ArrivalRecorded", when, arrival_id, arrival_id=arrival_id, biometric_id=biometric("arrival", arrival_id),
        family_name="Bench", given_names="Arrival", date_of_birth="1990-01-01", nationality=nationality,
        claimed_minor=False, landed_at=(when - timedelta(hours=1)).isoformat(), landing_point="Dover",
        vessel_ref=vessel, departed_from="FRA", rescued_at_sea=False, asylum_claimed=False)


def application(app_id: str, when: datetime) -> list[Record]:
    """An expression of interest and, a minute later, its clear vetting."""
    eoi = doc("ExpressionOfInterestSubmitted", when, app_id, application_id=app_id, family_group_ref=None,
              nationality="SYR", date_of_birth="1992-02-02", located_in_france_verified=True,
              submitted_at=(when - timedelta(minutes=5)).isoformat())
    vetted = doc("ApplicationVetted", when + timedelta(minutes=1), app_id, application_id=app_id,
                 biometric_id=biometric("applicant", app_id), security_outcome="clear")
    return [(T.ADMISSIONS_APPLICATIONS, app_id, eoi), (T.ADMISSIONS_APPLICATIONS, app_id, vetted)]


def clock_tick(when: datetime) -> Record:
    return T.OPS_CONTROL, "clock", doc("ClockTick", when, "clock")


def weekly_cap(when: datetime, week: str, cap: int) -> Record:
    return T.OPS_CONTROL, week, doc("WeeklyCapSet", when, week, week=week, cap=cap)


def daily_counts(year: int, total: int, rng: random.Random) -> list[int]:
    """`total` arrivals over the year's days: about 55% of days none, the rest heavy-tailed,
    none above PEAK_DAY."""
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    weights = [0.0 if rng.random() < 0.55 else rng.paretovariate(1.6) for _ in range(days)]
    if not any(weights):
        weights[rng.randrange(days)] = 1.0
    s = sum(weights)
    counts = [int(total * w / s) for w in weights]
    short = total - sum(counts)
    order = sorted(range(days), key=lambda d: -weights[d])
    for d in order[:short]:
        counts[d] += 1
    spill = 0
    for d in range(days):  # above the peak: pour into the other crossing days
        if counts[d] > PEAK_DAY:
            spill += counts[d] - PEAK_DAY
            counts[d] = PEAK_DAY
    for d in order[::-1]:
        if spill <= 0:
            break
        if 0 < counts[d] < PEAK_DAY:
            add = min(spill, PEAK_DAY - counts[d])
            counts[d] += add
            spill -= add
    return counts


def yearly(n: int) -> dict[int, int]:
    """The history's arrivals per year, scaled to `n` in all (largest remainders)."""
    if n >= HISTORY:
        return dict(YEARS)
    exact = {y: c * n / HISTORY for y, c in YEARS.items()}
    out = {y: int(v) for y, v in exact.items()}
    for y in sorted(exact, key=lambda y: out[y] - exact[y])[: n - sum(out.values())]:
        out[y] += 1
    return out


def history(n: int = HISTORY, seed: int = 11) -> tuple[list[Record], dict[str, int]]:
    """The replay's records in event-time order, and how many of each kind."""
    rng = random.Random(seed)
    timed: list[Timed] = []
    kinds: dict[str, int] = {}
    seq = 0

    def add(at: datetime, record: Record, kind: str) -> None:
        nonlocal seq
        timed.append(Timed(at, seq, record))
        seq += 1
        kinds[kind] = kinds.get(kind, 0) + 1

    i = 0
    for year, total in yearly(n).items():
        for day_no, count in enumerate(daily_counts(year, total, rng)):
            if not count:
                continue
            day = datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=day_no)
            for k in range(count):
                when = day + timedelta(hours=3, seconds=int(9 * 3600 * k / count))
                arrival_id = f"BENCH-A{i:07d}"
                add(when, arrival(arrival_id, when, f"SB-{year}-{day_no:03d}-{k // 50}",
                                  NATIONALITIES[i % len(NATIONALITIES)]), "ArrivalRecorded")
                if rng.random() < CASEWORK_SHARE:
                    later = when + timedelta(days=rng.randint(1, 20), hours=2)
                    if later.year == year or later < datetime(2026, 1, 1, tzinfo=UTC):
                        add(later, (T.CASEWORK_UPDATES, arrival_id, doc(
                            "AsylumClaimDecided", later, arrival_id, arrival_id=arrival_id,
                            outcome=rng.choice(("withdrawn", "inadmissible"))) if rng.random() < 0.6 else doc(
                            "PersonDetained", later, arrival_id, arrival_id=arrival_id)), "casework")
                if day.date() >= SCHEME_START and rng.random() < APPLICATION_SHARE:
                    app_id = f"BENCH-P{i:07d}"
                    for r in application(app_id, when + timedelta(minutes=30)):
                        add(when + timedelta(minutes=30), r, "application")
                if rng.random() < ANSWER_SHARE:
                    rid = _id("request", i)
                    later = when + timedelta(days=2)
                    if rng.random() < 0.5:
                        add(later, (T.LIAISON_FR_DECISIONS, rid, doc(
                            "ReturnRequestAnswered", later, rid, request_id=rid, decision="accepted",
                            reason_code=None)), "french_answer")
                    else:
                        add(later, (T.TRANSFERS_MOVEMENTS, rid, doc(
                            "ReturnExecuted", later, rid, request_id=rid, flight_ref="BENCH-FLIGHT")), "movement")
                i += 1
            add(day + timedelta(hours=23, minutes=59), clock_tick(day + timedelta(hours=23, minutes=59)), "ClockTick")
    week_start = datetime.combine(SCHEME_START, datetime.min.time(), tzinfo=UTC)
    week_start -= timedelta(days=week_start.weekday())
    while week_start.year <= 2025:
        at = week_start + timedelta(minutes=1)
        add(at, weekly_cap(at, iso_week(at), CAP), "WeeklyCapSet")
        week_start += timedelta(days=7)
    timed.sort(key=lambda t: (t.at, t.seq))
    return [t.record for t in timed], kinds


def arrivals_in(records: list[Record]) -> int:
    return sum(1 for topic, _, _ in records if topic == T.BORDER_ARRIVALS)
