"""Drive matching directly, with a tiny stand-in for enforcement's biometric index.

`Harness` calls the exchange (the domain model) and keeps its domain events; `Wired` runs the
service itself (`Matching.handle`) one record per batch, keeping the records it would commit
to Redis, so a test can restore a fresh service from them at any step.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

from services.matching.app import Matching
from services.matching.exchange import Exchange
from services.intake.rules import PERSONAL_FIELDS
from shared.events.inbound import ANY_IN_HOUSE
from shared.events.internal import ScreenedEvent, Screening
from shared.runtime import BatchContext
from shared.settings import Settings
from shared.state import Snapshot
from shared.shards import bucket_of
from tests.support.chunks import restore_in_chunks


class Screener:
    """Enforcement's biometric index, as far as matching sees it: the person's other ids."""

    def __init__(self, buckets: bool = False) -> None:
        self.people: dict[str, dict[str, list[str]]] = {}
        self.buckets = buckets  # as enforcement in shards screens: with the person's bucket

    def screen(self, doc: dict) -> Screening:
        screening = self._screen(doc)
        if self.buckets and doc.get("biometric_id") and doc["event_type"] in (
                "ArrivalRecorded", "ApplicationVetted", "IllegalWorkingEncounter"):
            screening = screening.model_copy(update={"person_bucket": bucket_of(bytes.fromhex(doc["biometric_id"]))})
        return screening

    def _screen(self, doc: dict) -> Screening:
        bio = doc.get("biometric_id")
        if not bio:
            return Screening()
        person = self.people.setdefault(bio, {"arrivals": [], "applications": [], "reports": []})
        t = doc["event_type"]
        if t == "ArrivalRecorded":
            screening = Screening(arrival_ids=list(person["arrivals"]), application_ids=list(person["applications"]))
            person["arrivals"].append(doc["arrival_id"])
        elif t == "ApplicationVetted":
            screening = Screening(arrival_ids=list(person["arrivals"]), report_ids=list(person["reports"]))
            person["applications"].append(doc["application_id"])
        elif t == "IllegalWorkingEncounter":
            screening = Screening(arrival_ids=list(person["arrivals"]), application_ids=list(person["applications"]))
            person["reports"].append(doc["report_id"])
        else:
            screening = Screening()
        return screening


class Harness:
    def __init__(self, **settings):
        self.ex = Exchange(Settings(**settings))
        self.screener = Screener()
        self.effects: list = []
        self.stored: dict[str, dict] = {}  # what Redis would hold

    def send(self, doc: dict) -> list:
        out = self.ex.apply(ANY_IN_HOUSE.validate_python(in_house(doc)), self.screener.screen(doc))
        for key, record in self.ex.repo.take_changes().items():
            if record is None:
                self.stored.pop(key, None)
            else:
                self.stored[key] = json.loads(json.dumps(record))
        self.ex.quota.clear()
        self.effects.extend(out)
        return out

    def restart(self) -> None:
        """A new exchange from the stored records (what a restart reads back from Redis)."""
        self.ex = Exchange(self.ex.settings)
        self.ex.load(json.loads(json.dumps(self.stored)))

    def instructions(self, kind: str) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "instruction" and e.data["kind"] == kind]

    def decisions(self, subject: str | None = None, decision: str | None = None) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "decision"
                and (subject is None or e.data["subject_ref"] == subject)
                and (decision is None or e.data["decision"] == decision)]

    def alerts(self, kind: str) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "alert" and e.data["kind"] == kind]

    def balances(self, week: str) -> list[dict]:
        return [e.data for e in self.effects if e.kind == "balance" and e.data["week"] == week]

    def balance(self, week: str) -> dict:
        return self.ex.figures(week)

    def requests(self) -> dict[str, str]:
        """arrival_id -> request_id of each RequestReturn so far."""
        return {d["arrival_id"]: d["request_id"] for d in self.instructions("RequestReturn")}



def in_house(doc: dict) -> dict:
    """An inbound document as the house carries it after intake: names and date of birth of an
    arrival go to transfer alone."""
    if doc.get("event_type") != "ArrivalRecorded":
        return doc
    return {k: v for k, v in doc.items() if k not in PERSONAL_FIELDS}

@dataclass
class FakeRecord:
    """What the runtime hands a service: a consumer record's value (and where it came from)."""

    value: bytes
    topic: str = "internal.enforcement.screened.v1"
    partition: int = 0
    offset: int = 0


class Wired:
    """The matching service, one record per batch, with an in-memory stand-in for Redis:
    records, consumed event ids and the weekly quota counters (the cap's authority)."""

    def __init__(self, **settings):
        self.settings = Settings(**settings)
        self.service = Matching(self.settings)
        self.screener = Screener()
        self.records: dict[str, dict] = {}
        self.seen: set[str] = set()
        self.quota: dict[str, dict[str, int]] = {}
        self.offset = 0

    def send(self, doc: dict) -> list[tuple[str, str | None, bytes]]:
        screened = ScreenedEvent(source_topic="test", event=in_house(doc), screening=self.screener.screen(doc))
        ctx = BatchContext(self.seen)
        self.service.handle(FakeRecord(screened.model_dump_json().encode(), offset=self.offset), ctx)
        self.service.finish(ctx)
        self.offset += 1
        for key, value in ctx.changes.upserts.items():
            self.records[key] = json.loads(value)
        for key in ctx.changes.deletes:
            self.records.pop(key, None)
        for q in ctx.changes.quota.values():
            counters = self.quota.setdefault(q.week, {"live": 0})
            counters["live"] += q.delta_live
            counters["cap"] = q.cap
            assert not (q.check and q.delta_live > 0 and counters["live"] > q.cap), "over the cap"
        self.seen.update(ctx.changes.seen)
        return [(o.topic, o.key, o.value) for o in ctx.out]

    def restart(self, rnd: random.Random | None = None) -> None:
        """From the stored records: all at once, or with `rnd` in chunks in any order, as a restart loads them."""
        self.service = Matching(self.settings)
        snapshot = Snapshot(version=1, records=json.loads(json.dumps(self.records)), seen=set(self.seen),
                            offsets={}, quota={w: dict(c) for w, c in self.quota.items()})
        if rnd is None:
            self.service.restore(snapshot)
        else:
            restore_in_chunks(self.service.restoring(), snapshot, rnd)
