"""After the run: every topic read from the beginning and checked.

- duplicate deliveries: a published event whose id was seen before with the same content
  (at-least-once: allowed, and counted);
- content changed: an id published with two different contents, or with a content other than
  the fault-free run's (must be none);
- lost: a valid inbound event that never reached intake's accepted log, a bad one never
  dead-lettered, an accepted event never screened, or an event the fault-free re-run of
  matching and transfer over the recorded logs publishes that the live run did not;
- extra: what intake, matching or transfer published that neither the inputs nor the
  fault-free run account for;
- invariant violations: the demo's checks (deploy.sim.checks) on the first publication of
  each outbound event, which is what a consumer that drops repeated event ids sees.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from collections import defaultdict
from dataclasses import dataclass, field

from deploy.sim import checks
from deploy.sim.kafka import OUTBOUND_TOPICS, Collector, Record
from deploy.sim.world import Out, World
from services.matching.app import Matching
from services.transfer.app import Transfer
from shared import topics as T
from shared.runtime import BatchContext, Service
from shared.settings import Settings
from shared.state import Snapshot

# what a service publishes from its handler: (topics, producer field; None = every record there)
MATCHING_OUT = {T.MATCHING_INSTRUCTIONS: None, T.OPS_AUDIT: "oioo-matching", T.OPS_ALERTS: "oioo-matching",
                T.OPS_BALANCE: "oioo-matching"}
TRANSFER_OUT = {T.LIAISON_UK_RETURN_REQUESTS: None, T.LIAISON_UK_ADMISSION_NOTICES: None,
                T.OPS_AUDIT: "oioo-transfer"}


@dataclass
class Findings:
    inbound: int = 0
    outbound: int = 0
    internal: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    violations: list[checks.Result] = field(default_factory=list)
    results: list[checks.Result] = field(default_factory=list)
    reference: dict[str, int] = field(default_factory=dict)


def event_id(topic: str, doc: dict) -> str | None:
    if topic in (T.INTAKE_ACCEPTED, T.ENFORCEMENT_SCREENED):
        return (doc.get("event") or {}).get("event_id")
    if topic == T.MATCHING_INSTRUCTIONS:
        return doc.get("instruction_id")
    if topic == T.INTAKE_PARTICULARS:  # no event of its own: one record per recorded arrival
        return f"{doc.get('arrival_id')}@{doc.get('occurred_at')}"
    return doc.get("event_id")


def canon(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


async def read_everything(bootstrap: str) -> dict[str, list[Record]]:
    col = Collector(bootstrap, tuple(t.name for t in T.TOPICS))
    await col.start()
    try:
        records = await col.drain(timeout=300)
    finally:
        await col.stop()
    by_topic: dict[str, list[Record]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        by_topic[r.topic].append(r)
    return by_topic


def fault_free(service: Service, log: list[Record]) -> list[tuple[str, str, str]]:
    """What `service` publishes from `log` read once in order, never crashing: (topic, id, content)."""
    service.restore(Snapshot(0, {}, {}, {}, {}))
    seen: dict[str, float] = {}
    out = []
    for rec in log:
        ctx = BatchContext(seen)
        service.handle(rec, ctx)
        seen.update(dict.fromkeys(ctx.changes.seen, 0.0))
        for o in ctx.out:
            doc = json.loads(o.value)
            out.append((o.topic, event_id(o.topic, doc), canon(doc)))
    return out


def transfer_log(logs: dict[str, list[Record]]) -> list[Record]:
    """Transfer's two inputs as one log in event time (an arrival's particulars before the
    instructions of the same instant): live, it read them side by side in whatever order, and
    a request read before its particulars waited for them, so any such order decides the same."""
    def when(r: Record) -> tuple[datetime, int]:
        doc = json.loads(r.value)
        return (datetime.fromisoformat(doc["occurred_at"]).astimezone(timezone.utc),
                0 if r.topic == T.INTAKE_PARTICULARS else 1)
    both = [*logs.get(T.INTAKE_PARTICULARS, []), *logs.get(T.MATCHING_INSTRUCTIONS, [])]
    return sorted(both, key=when)


def _difference(live: dict, reference: dict) -> str:
    keys = sorted(k for k in live.keys() | reference.keys() if live.get(k) != reference.get(k))
    return "; ".join(f"{k}: live {live.get(k)!r}, fault-free {reference.get(k)!r}" for k in keys)


def dump(logs: dict[str, list[Record]], path) -> None:
    """Every record read, one JSON line each, to look at a failed run afterwards."""
    with open(path, "w", encoding="utf-8") as out:
        for topic, recs in logs.items():
            for r in recs:
                out.write(json.dumps({"topic": topic, "partition": r.partition, "offset": r.offset,
                                      "value": r.value.decode("utf-8", "replace")}) + "\n")


def verify(world: World, sent: list[Out], logs: dict[str, list[Record]], settings: Settings) -> Findings:
    f = Findings()
    # ---- every published record: repeats and changes ------------------------------------------
    live: dict[tuple[str, str], str] = {}
    for topic, recs in logs.items():
        if topic in T.INBOUND_TOPICS:
            f.inbound += len(recs)
            continue
        if topic in OUTBOUND_TOPICS:
            f.outbound += len(recs)
        else:
            f.internal += len(recs)
        for r in recs:
            doc = json.loads(r.value)
            key = (topic, event_id(topic, doc))
            text = canon(doc)
            if key not in live:
                live[key] = text
            elif live[key] == text:
                f.duplicates += 1
            else:
                f.changed.append(f"{topic}: {key[1]} published with two different contents")

    # ---- the path: inbound -> accepted -> screened ------------------------------------------------
    valid = {json.loads(o.value)["event_id"] for o in sent if o.bad is None}
    accepted = {k[1] for k in live if k[0] == T.INTAKE_ACCEPTED}
    screened = {k[1] for k in live if k[0] == T.ENFORCEMENT_SCREENED}
    f.lost += [f"inbound event {e} never reached {T.INTAKE_ACCEPTED}" for e in sorted(valid - accepted)]
    f.extra += [f"{T.INTAKE_ACCEPTED}: {e} was never sent" for e in sorted(accepted - valid)]
    f.lost += [f"accepted event {e} never reached {T.ENFORCEMENT_SCREENED}" for e in sorted(accepted - screened)]
    f.extra += [f"{T.ENFORCEMENT_SCREENED}: {e} was never accepted" for e in sorted(screened - accepted)]
    lettered = {(d["source_topic"], d["partition"], d["offset"])
                for d in (json.loads(r.value) for r in logs.get(T.OPS_DEAD_LETTERS, []))}
    f.lost += [f"bad message {b.label} at {b.topic}[{b.partition}]@{b.offset} never dead-lettered"
               for b in world.bad if (b.topic, b.partition, b.offset) not in lettered]

    # ---- matching and transfer against a fault-free run over the same logs ------------------
    for name, service, log, owned in (
            ("matching", Matching(settings), logs.get(T.ENFORCEMENT_SCREENED, []), MATCHING_OUT),
            ("transfer", Transfer(settings.personal_data_retention_days), transfer_log(logs), TRANSFER_OUT)):
        reference = fault_free(service, log)
        f.reference[name] = len(reference)
        expected = set()
        for topic, eid, text in reference:
            expected.add((topic, eid))
            if (topic, eid) not in live:
                f.lost.append(f"{name}: {topic} {eid} (the fault-free run publishes it)")
            elif live[(topic, eid)] != text:
                f.changed.append(f"{name}: {topic} {eid} differs from the fault-free run: "
                                 f"{_difference(json.loads(live[(topic, eid)]), json.loads(text))}")
        for (topic, eid), text in live.items():
            if topic in owned and (owned[topic] is None or json.loads(text).get("producer") == owned[topic]) \
                    and (topic, eid) not in expected:
                f.extra.append(f"{name}: {topic} {eid} is not in the fault-free run")

    # ---- the contract's invariants on what a deduplicating consumer saw ----------------------
    obs = checks.Observed()
    for topic in (*OUTBOUND_TOPICS, T.OPS_CONTROL):
        first: set[str] = set()
        for r in logs.get(topic, []):
            doc = json.loads(r.value)
            eid = doc.get("event_id")
            if topic != T.OPS_CONTROL and eid in first:
                continue
            first.add(eid)
            obs.add(topic, r.partition, r.offset, r.value)
    f.results = checks.check_all(world, obs)
    f.violations = [r for r in f.results if not r.ok]
    return f
