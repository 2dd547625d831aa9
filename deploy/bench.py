"""Throughput of the house end to end: `python -m deploy.bench` (`make bench`).

Starts a fresh embedded stack, then:

1. arrivals: publishes N signed ArrivalRecorded (env BENCH_N, default 20000; plain adults who
   left France, all returnable) as fast as a plain aiokafka producer goes (acks=all,
   idempotence off, linger 5 ms), and times until every service group has settled: arrivals
   per second through intake -> enforcement -> matching.
2. pairing: raises the week's cap out of the way (WeeklyCapSet), then publishes M application
   pairs (env BENCH_PAIRS, default 5000: ExpressionOfInterestSubmitted + ApplicationVetted
   clear), each of which forms a pair with one of the waiting arrivals, and times it the
   same way: pairs per second, through matching and transfer to ReturnRequested.

Before the stack, `pairing_rate`: matching alone, in process (its service's `handle` per
event: parse, decide, derive ids, build the wire events and the records to commit; no broker,
no Redis), pairs per second with N arrivals waiting. It and the end-to-end pairing figure are
merged into `.run/bench.json`. BENCH_END_TO_END=0 skips the stack.

Prints a small table and exits 0. It asserts nothing about timing; the numbers depend on
the machine. All events are in event time on 2025-09-01/02, inside the scheme.
"""
from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from deploy.sim.kafka import Collector, SettleTimeout, SignedPublisher, close_probes, settle
from shared import topics as T
from deploy.embedded import EmbeddedStack
from shared.signing import Keyring
from shared.timeutil import LONDON, iso_week

T0 = datetime(2025, 9, 1, 6, 0, tzinfo=LONDON)
NS = uuid.UUID("3d0f7a1e-8b2c-4e55-a1f0-5c6b7d8e9f01")


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, "|".join(map(str, parts))))


def _doc(event_type: str, when: datetime, **fields) -> bytes:
    subject = next(iter(fields.values()), "")
    return json.dumps({"event_id": _id(event_type, subject, when.isoformat()), "event_type": event_type,
                       "occurred_at": when.isoformat(), "producer": "bench", **fields},
                      separators=(",", ":")).encode()


def arrival(i: int) -> tuple[str, str, bytes]:
    when = T0 + timedelta(milliseconds=i)
    arrival_id = f"BENCH-A{i:07d}"
    return T.BORDER_ARRIVALS, arrival_id, _doc(
        "ArrivalRecorded", when, arrival_id=arrival_id,
        biometric_id=hashlib.sha256(f"bench-arrival-{i}".encode()).hexdigest(),
        family_name="Bench", given_names="Arrival", date_of_birth="1990-01-01", nationality="IRQ",
        claimed_minor=False, landed_at=(when - timedelta(hours=1)).isoformat(), landing_point="Dover",
        vessel_ref=f"SB-BENCH-{i // 50}", departed_from="FRA", rescued_at_sea=False, asylum_claimed=False)


def application_pair(i: int) -> list[tuple[str, str, bytes]]:
    when = T0 + timedelta(hours=20, milliseconds=2 * i)
    app_id = f"BENCH-P{i:07d}"
    eoi = _doc("ExpressionOfInterestSubmitted", when, application_id=app_id, family_group_ref=None,
               nationality="SYR", date_of_birth="1992-02-02", located_in_france_verified=True,
               submitted_at=(when - timedelta(minutes=5)).isoformat())
    vetted = _doc("ApplicationVetted", when + timedelta(milliseconds=1), application_id=app_id,
                  biometric_id=hashlib.sha256(f"bench-applicant-{i}".encode()).hexdigest(),
                  security_outcome="clear")
    return [(T.ADMISSIONS_APPLICATIONS, app_id, eoi), (T.ADMISSIONS_APPLICATIONS, app_id, vetted)]


def domain_pairing_rate(n: int, m: int) -> dict:
    """Pairs per second through matching's service in process, with n arrivals waiting."""
    from services.matching.app import Matching
    from shared.events.inbound import ANY_INBOUND
    from shared.events.internal import ScreenedEvent, Screening
    from shared.runtime import BatchContext
    from shared.settings import Settings

    class Rec:  # what the runtime hands a service
        topic, partition, offset = T.ENFORCEMENT_SCREENED, 0, 0

        def __init__(self, value: bytes):
            self.value = value

    def screened(value: bytes) -> Rec:
        return Rec(ScreenedEvent(source_topic="bench", event=json.loads(value)).model_dump_json().encode())

    service, seen = Matching(Settings()), set()
    week = iso_week(T0)
    for r in [screened(_doc("WeeklyCapSet", T0, week=week, cap=10 * (n + m)))] + [screened(arrival(i)[2])
                                                                                  for i in range(n)]:
        service.handle(r, BatchContext(seen))
    exchange = copy.deepcopy(service.exchange)  # the same backlog, for the domain-only figure
    records = [screened(v) for i in range(m) for _, _, v in application_pair(i)]
    waiting = len(service.exchange.returns)
    t0 = time.perf_counter()
    for r in records:
        service.handle(r, BatchContext(seen))
    elapsed = time.perf_counter() - t0
    formed = waiting - len(service.exchange.returns)
    events = [ANY_INBOUND.validate_python(json.loads(v)) for i in range(m) for _, _, v in application_pair(i)]
    t0 = time.perf_counter()
    for event in events:
        exchange.apply(event, Screening())
        exchange.repo.take_changes()
    domain = time.perf_counter() - t0
    return {"pairing_rate": round(formed / elapsed, 1), "pairing_rate_waiting": waiting,
            "pairing_rate_pairs": formed,
            "pairing_rate_scope": "matching service in process (handle per event: parse, decide, ids, wire "
                                  "events, records); no broker, no Redis",
            "pairing_rate_domain": round((waiting - len(exchange.returns)) / domain, 1)}


def save(figures: dict) -> Path:
    """Merge into .run/bench.json (other figures in it are kept)."""
    path = Path(__file__).resolve().parents[1] / ".run" / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    current.update(figures)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return path


async def publish_all(pub: SignedPublisher, records: list[tuple[str, str, bytes]]) -> float:
    t0 = time.monotonic()
    for topic, key, value in records:
        await pub.send(topic, key, value)
    await pub.flush()
    return time.monotonic() - t0


async def wait_settled(bootstrap: str, label: str, limit: float) -> float:
    """settle(), with a progress line every 30 s while it waits."""
    t0 = time.monotonic()
    while True:
        try:
            await settle(bootstrap, timeout=30)
            return time.monotonic() - t0
        except SettleTimeout as exc:
            waited = time.monotonic() - t0
            if waited > limit:
                raise
            print(f"  {label}: still settling after {waited:.0f}s ({str(exc).split(': ', 1)[-1][:160]})", flush=True)


async def phase(stack: EmbeddedStack, pub: SignedPublisher, col: Collector, label: str,
                records: list[tuple[str, str, bytes]], limit: float) -> dict:
    print(f"{label}: publishing {len(records)} events ...", flush=True)
    t0 = time.monotonic()
    published = await publish_all(pub, records)
    print(f"{label}: published in {published:.1f}s; waiting for the house to settle ...", flush=True)
    await wait_settled(stack.bootstrap, label, limit)
    total = time.monotonic() - t0
    out: dict[str, int] = {}
    for rec in await col.drain(timeout=120):
        kind = json.loads(rec.value).get("event_type", "?")
        out[kind] = out.get(kind, 0) + 1
    return {"label": label, "events": len(records), "publish": published, "total": total, "out": out}


async def main_async() -> int:
    n = int(os.environ.get("BENCH_N", "20000"))
    m = int(os.environ.get("BENCH_PAIRS", "5000"))
    limit = float(os.environ.get("BENCH_TIMEOUT", "3600"))
    print(f"pairing (matching in process): {n} arrivals waiting, {m} applications ...", flush=True)
    domain = domain_pairing_rate(n, m)
    print(f"pairing_rate {domain['pairing_rate']:.0f} pairs/s ({domain['pairing_rate_pairs']} pairs, "
          f"{domain['pairing_rate_waiting']} waiting; {domain['pairing_rate_scope']}); the exchange alone "
          f"{domain['pairing_rate_domain']:.0f} pairs/s -> {save(domain)}", flush=True)
    if os.environ.get("BENCH_END_TO_END", "1") == "0":
        return 0
    run_dir = Path(tempfile.mkdtemp(prefix="oioo-bench-"))
    stack = EmbeddedStack(run_dir)
    wall0 = time.monotonic()
    try:
        print(f"starting the embedded stack (logs in {run_dir / 'logs'}) ...", flush=True)
        await stack.start_async()
        print(f"stack up in {time.monotonic() - wall0:.1f}s", flush=True)
        pub = SignedPublisher(stack.bootstrap, Keyring.from_file(stack.keys_file), linger_ms=5)
        col = Collector(stack.bootstrap)
        await pub.start()
        await col.start()
        try:
            rows = [await phase(stack, pub, col, "arrivals", [arrival(i) for i in range(n)], limit)]
            week = iso_week(T0)
            cap = [(T.OPS_CONTROL, week, _doc("WeeklyCapSet", T0 + timedelta(hours=19), week=week, cap=10 * (n + m)))]
            await publish_all(pub, cap)
            await wait_settled(stack.bootstrap, "cap", limit)
            await col.drain()
            pairs = [r for i in range(m) for r in application_pair(i)]
            rows.append(await phase(stack, pub, col, "pairing", pairs, limit))
        finally:
            await pub.stop()
            await col.stop()
            await close_probes()
        print()
        print(f"{'phase':10} {'events':>7} {'publish s':>9} {'publish/s':>9} {'settled s':>9} {'end-to-end/s':>12}  outcome")
        for r in rows:
            if r["label"] == "arrivals":
                unit, outcome = n, f"{n} arrivals -> {r['out'].get('Decision', 0)} Decisions"
            else:
                unit = m
                outcome = (f"{m} applications -> {r['out'].get('ReturnRequested', 0)} ReturnRequested, "
                           f"{r['out'].get('WeeklyBalance', 0)} WeeklyBalance, {r['out'].get('Decision', 0)} Decisions")
            print(f"{r['label']:10} {r['events']:7d} {r['publish']:9.1f} {r['events'] / r['publish']:9.0f} "
                  f"{r['total']:9.1f} {unit / r['total']:12.1f}  {outcome}")
        pairing = next(r for r in rows if r["label"] == "pairing")
        save({"pairing_rate_end_to_end": round(m / pairing["total"], 1)})
        print(f"(end-to-end/s: arrivals, or pairs, per second from the first send until every group settled; "
              f"wall time {time.monotonic() - wall0:.0f}s)")
        return 0
    finally:
        await stack.stop_async()


def main() -> int:
    try:
        return asyncio.run(main_async())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
