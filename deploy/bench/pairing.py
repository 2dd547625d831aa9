"""`pairing_rate`: matching alone, in process (its service's `handle` per event: parse, decide,
derive ids, build the wire events and the records to commit; no broker, no Redis), pairs per
second with N arrivals waiting; and the exchange alone (the domain model, no parsing)."""
from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta

from deploy.bench.workload import application, arrival, weekly_cap
from shared import heap, topics as T
from shared.timeutil import LONDON, iso_week

T0 = datetime(2025, 9, 1, 6, 0, tzinfo=LONDON)


def domain_pairing_rate(n: int, m: int) -> dict:
    """Pairs per second through matching's service in process, with n arrivals waiting."""
    heap.tune()  # as the service's process does (shared/runtime.serve)
    from services.matching.app import Matching
    from services.intake.rules import PERSONAL_FIELDS

    ARRIVAL_HELD_BACK = {"biometric_id", *PERSONAL_FIELDS}
    from shared.events.inbound import ANY_INBOUND
    from shared.events.internal import ScreenedEvent, Screening
    from shared.runtime import BatchContext
    from shared.settings import Settings

    class Rec:  # what the runtime hands a service
        topic, partition, offset = T.ENFORCEMENT_SCREENED, 0, 0

        def __init__(self, value: bytes):
            self.value = value

    def screened(value: bytes) -> Rec:
        # as enforcement forwards it: without the biometric and the particulars
        event = json.loads(value)
        held_back = ARRIVAL_HELD_BACK if event["event_type"] == "ArrivalRecorded" else {"biometric_id"}
        event = {k: v for k, v in event.items() if k not in held_back}
        return Rec(ScreenedEvent(source_topic="bench", event=event).model_dump_json().encode())

    service, seen = Matching(Settings()), set()
    week = iso_week(T0)
    backlog = [weekly_cap(T0, week, 10 * (n + m))] + [
        arrival(f"BENCH-A{i:07d}", T0 + timedelta(milliseconds=i), f"SB-BENCH-{i // 50}") for i in range(n)]
    for _, _, value in backlog:
        service.handle(screened(value), BatchContext(seen))
    exchange = copy.deepcopy(service.exchange)  # the same backlog, for the domain-only figure
    apps = [v for i in range(m)
            for _, _, v in application(f"BENCH-P{i:07d}", T0 + timedelta(hours=20, milliseconds=2 * i))]
    records = [screened(v) for v in apps]
    waiting = len(service.exchange.returns)
    t0 = time.perf_counter()
    for r in records:
        service.handle(r, BatchContext(seen))
    elapsed = time.perf_counter() - t0
    formed = waiting - len(service.exchange.returns)
    events = [ANY_INBOUND.validate_python(json.loads(v)) for v in apps]
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
