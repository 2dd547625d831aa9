"""`python -m deploy.bench [--arrivals N] [--out FILE]` (`make bench`): one run, a table, and
`.run/bench.json` (merged: figures already there and not measured again are kept).

Phases, each on a fresh embedded stack where it says so:

0. `pairing_rate`: matching's service in process with 20,000 arrivals waiting (no broker).
1. stack A: the ceiling (a bare aiokafka relay, same broker, same message size), then each
   service alone on its main input: the input is loaded first, then the services are started
   one at a time in the order of the path, and each is timed from its first commit to its
   last (`<service>_alone_rate`, records per second).
2. stack B: the historical replay (`workload.history`) end to end, from the first publish
   until every group has consumed its inputs (a group commits only after its outputs are
   published, so the last effect is then visible on the outbound topics); each service's
   RSS sampled meanwhile; then latency at a steady 200 arrivals/s (plus 10 applications/s,
   which pair with the backlog); then the commit script with one quota change against INCR.
   Before it, `latency` runs the same steady load on a fresh stack (`fresh_*` keys): live
   traffic without the history in the broker's log and the services' state.
3. stack C: the same replay scaled out: intake and enforcement in two shards each
   (shared/shards.py), every shard with a standby, and two instances of matching and transfer,
   of which only the lease holder consumes (matching is one writer by design, and merges
   enforcement's shards' outputs). The shards share the machine's two cores with the rest, so
   this measures sharding's cost and its correctness (the same pairs), not more speed.

Env BENCH_ARRIVALS is the default of --arrivals (the history's 192,633); BENCH_LATENCY_SECONDS
(30), BENCH_TIMEOUT (3600 s per wait). Nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from deploy.bench import measure, workload
from deploy.bench.pairing import domain_pairing_rate
from deploy.embedded import SERVICES, EmbeddedStack

SCALEOUT_SHARDS = 2
from deploy.sim.kafka import Collector, close_probes
from shared import topics as T
from shared.relay import send_keyed
from shared.signing import Keyring, signed_headers
from shared.timeutil import iso_week

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc
TARGETS = {"replay_rate": ">= 5000", "replay_ratio": ">= 0.25", "p99_decision_ms": "<= 50",
           "pairing_rate": ">= 2000", "quota_ratio": ">= 0.5", "peak_rss_mb": "<= 150 each"}
Signed = tuple[str, str, bytes, list[tuple[str, bytes]]]  # topic, key, value, the record's headers


def save(figures: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    current.update(figures)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return path


def signed(keyring: Keyring, records: list[workload.Record]) -> list[Signed]:
    """Signed, and the headers made, before the clock starts: the terminals do that, not the house."""
    keys = {}
    out = []
    for topic, key, value in records:
        k = keys.get(topic) or keys.setdefault(topic, keyring.key_for_topic(topic))
        headers = [("content-type", b"application/json")]
        headers += [(name, text.encode()) for name, text in signed_headers(k, value).items()]
        out.append((topic, key, value, headers))
    return out


class Publisher:
    def __init__(self, bootstrap: str, linger_ms: int = 5):
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                         linger_ms=linger_ms, max_batch_size=256 * 1024)

    async def __aenter__(self) -> "Publisher":
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()

    async def send(self, rec: Signed) -> asyncio.Future:
        topic, key, value, headers = rec
        return await self.producer.send(topic, value, key=key.encode(), headers=headers)

    async def send_all(self, recs: list[Signed], chunk: int = 4000) -> None:
        """Everything, in order within each partition, as the terminals would send it, but in
        record batches built here: the publisher shares the machine with the house, and one
        `send` per record cost it about 70 us of CPU per event (the partition is the
        producer's own default for the key, so every record lands where `send` puts it)."""
        for start in range(0, len(recs), chunk):
            await asyncio.gather(*await send_keyed(self.producer, [
                (topic, key.encode(), value, headers) for topic, key, value, headers in recs[start:start + chunk]]))


async def settled(bootstrap: str, label: str, limit: float, barrier: measure.Settled | None = None) -> float:
    """Until every group has consumed everything on its inputs (measure.Settled)."""
    if barrier is not None:
        return await barrier.wait(label, limit)
    barrier = measure.Settled(bootstrap)
    await barrier.start()
    try:
        return await barrier.wait(label, limit)
    finally:
        await barrier.stop()


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- phases

async def phase_alone(run_dir: Path, keyring: Keyring, n: int, limit: float) -> dict:
    stack = EmbeddedStack(run_dir / "alone")
    figures: dict = {}
    try:
        await stack.start_infra_async()
        stack.plan_instances()
        values = [workload.arrival(f"C{i:07d}", datetime(2025, 9, 1, tzinfo=UTC), "SB-C")[2] for i in range(n)]
        figures.update(await measure.ceiling(stack.bootstrap, values))
        say(f"ceiling: {figures['ceiling_rate']:.0f} msgs/s (bare aiokafka relay, {n} messages of "
            f"{figures['ceiling_message_bytes']} bytes)")
        t0 = datetime(2025, 9, 1, 6, tzinfo=UTC)
        apps = max(1, n // 4)
        weeks = {iso_week(t0 + timedelta(seconds=10 * i)) for i in range(n + 2 * apps)}
        records = [workload.weekly_cap(t0, w, 10**6) for w in sorted(weeks)]
        records += [workload.arrival(f"BENCH-A{i:07d}", t0 + timedelta(seconds=10 * i), f"SB-{i // 50}")
                    for i in range(n)]
        later = t0 + timedelta(seconds=10 * n)
        records += [r for i in range(apps) for r in workload.application(f"BENCH-P{i:07d}", later + timedelta(seconds=10 * i))]
        async with Publisher(stack.bootstrap) as pub:
            await pub.send_all(signed(keyring, records))
        for service in SERVICES:
            await stack.start_service_async(service)
            got = await measure.alone_rate(stack.bootstrap, f"oioo-{service}", limit, since=time.monotonic())
            figures[f"{service}_alone_rate"] = got["rate"]
            figures[f"{service}_alone_records"] = got["records"]
            say(f"{service} alone: {got['rate'] or 0:.0f} records/s ({got['records']} records on its inputs)")
    finally:
        await close_probes()
        await stack.stop_async()
    return figures


async def replay(stack: EmbeddedStack, recs: list[Signed], label: str, limit: float) -> tuple[float, dict]:
    """Publish everything as fast as the producer goes; wall time until every group settled.
    Returns the seconds and what the outbound topics hold afterwards."""
    # Read only once the house has settled: a consumer assigned from the start prefetches the
    # outbound topics while the clock runs, and takes CPU from the house it is measuring.
    col = Collector(stack.bootstrap, (T.OPS_AUDIT, T.LIAISON_UK_RETURN_REQUESTS,
                                                          T.OPS_DEAD_LETTERS))
    barrier = measure.Settled(stack.bootstrap, measure.groups_of(stack))
    await barrier.start()
    collecting = False
    try:
        say(f"{label}: publishing {len(recs)} events ...")
        t0 = time.monotonic()
        async with Publisher(stack.bootstrap) as pub:
            await pub.send_all(recs)
        published = time.monotonic() - t0
        say(f"{label}: published in {published:.1f}s ({len(recs) / published:.0f}/s); waiting for the house ...")
        await settled(stack.bootstrap, label, limit, barrier)
        seconds = time.monotonic() - t0
        await col.start()
        collecting = True
        out = {"decisions": 0, "first_decisions": set(), "paired": set(), "return_requests": 0, "dead_letters": 0}
        for rec in await col.drain(timeout=600):
            d = json.loads(rec.value)
            if rec.topic == T.OPS_AUDIT:
                out["decisions"] += 1
                out["first_decisions"].add(d.get("subject_ref"))
                if d.get("decision") == "paired":
                    out["paired"].add(d.get("subject_ref"))
            elif rec.topic == T.LIAISON_UK_RETURN_REQUESTS:
                out["return_requests"] += 1
            else:
                out["dead_letters"] += 1
        out["topic_records"] = {t: barrier.records(t) for t in
                                (T.INTAKE_ACCEPTED, T.ENFORCEMENT_SCREENED, T.MATCHING_INSTRUCTIONS)}
        out["topic_records"].update({T.OPS_AUDIT: out["decisions"], T.LIAISON_UK_RETURN_REQUESTS:
                                     out["return_requests"], T.OPS_DEAD_LETTERS: out["dead_letters"]})
        return seconds, out
    finally:
        await barrier.stop()
        if collecting:
            await col.stop()


async def latency(stack: EmbeddedStack, keyring: Keyring, seconds: float, limit: float) -> dict:
    """Steady 200 arrivals/s and 10 applications/s; from each publish to the Decision about it
    on ops.audit.v1 (arrivals: the first one; applications: `paired`)."""
    start = datetime(2026, 1, 5, 6, tzinfo=UTC)
    weeks = sorted({iso_week(start + timedelta(days=d)) for d in range(8)})
    watcher = measure.AuditWatcher(stack.bootstrap, T.OPS_AUDIT)
    await watcher.start()
    sent_arrival: dict[str, float] = {}
    sent_vetted: dict[str, float] = {}
    try:
        async with Publisher(stack.bootstrap, linger_ms=1) as pub:
            await pub.send_all(signed(keyring, [workload.weekly_cap(start, w, 10**6) for w in weeks]))
            await settled(stack.bootstrap, "latency (cap)", limit)
            t0 = time.monotonic()
            tick, i, a = 0, 0, 0
            while time.monotonic() - t0 < seconds:
                for _ in range(10):  # 10 per 50 ms
                    aid = f"LAT-A{i:07d}"
                    rec = signed(keyring, [workload.arrival(aid, start + timedelta(seconds=20 * i), f"SB-L{i // 50}")])[0]
                    sent_arrival[aid] = time.monotonic()
                    await pub.send(rec)
                    i += 1
                if tick % 2 == 0:  # 10 per second
                    pid = f"LAT-P{a:06d}"
                    eoi, vetted = signed(keyring, workload.application(pid, start + timedelta(seconds=20 * i)))
                    await pub.send(eoi)
                    sent_vetted[pid] = time.monotonic()
                    await pub.send(vetted)
                    a += 1
                tick += 1
                await asyncio.sleep(max(0.0, t0 + tick * 0.05 - time.monotonic()))
            rate = i / (time.monotonic() - t0)
            await pub.producer.flush()
        await settled(stack.bootstrap, "latency", limit)
        await asyncio.sleep(0.5)
    finally:
        await watcher.stop()
    decision = [1000 * (watcher.first[k] - t) for k, t in sent_arrival.items() if k in watcher.first]
    pair = [1000 * (watcher.paired[k] - t) for k, t in sent_vetted.items() if k in watcher.paired]
    d, p = measure.percentiles(decision), measure.percentiles(pair)
    return {"latency_arrival_rate": round(rate, 1), "latency_arrivals": i, "latency_decided": len(decision),
            "p50_decision_ms": d["p50"], "p95_decision_ms": d["p95"], "p99_decision_ms": d["p99"],
            "latency_applications": a, "latency_paired": len(pair),
            "p50_pair_ms": p["p50"], "p95_pair_ms": p["p95"], "p99_pair_ms": p["p99"]}


async def phase_replay(run_dir: Path, keyring: Keyring, recs: list[Signed], arrivals: int, args) -> tuple[dict, set]:
    stack = EmbeddedStack(run_dir / "replay")
    figures: dict = {}
    try:
        await stack.start_async()
        sampler = measure.MemorySampler(measure.service_pids(stack))
        parts = {**sampler.pids, "broker": stack.broker.process.pid, "bench (publisher)": os.getpid()}
        if stack.redis.process is not None:
            parts["redis"] = stack.redis.process.pid
        cpu0 = {n: measure.cpu_seconds(p) for n, p in parts.items()}
        sampler.start()
        seconds, out = await replay(stack, recs, "replay", args.timeout)
        cpu = {n: round(measure.cpu_seconds(p) - cpu0[n], 2) for n, p in parts.items()}
        figures["replay_batches"] = await measure.batch_counts(stack.metrics_urls)
        await sampler.stop()
        at_end = sampler.sample()
        figures.update({
            "replay_arrivals": arrivals, "replay_events": len(recs), "replay_seconds": round(seconds, 2),
            "replay_rate": round(arrivals / seconds, 1), "replay_events_rate": round(len(recs) / seconds, 1),
            "replay_decisions": out["decisions"],
            "replay_arrivals_decided": sum(1 for s in out["first_decisions"] if str(s).startswith("BENCH-A")),
            "replay_pairs": len([s for s in out["paired"] if str(s).startswith("BENCH-A")]),
            "replay_return_requests": out["return_requests"], "replay_dead_letters": out["dead_letters"],
            "peak_rss_mb": {k: round(v, 1) for k, v in sampler.peak.items()},
            "rss_end_mb": {k: round(v, 1) for k, v in at_end.items()},
            # CPU each part used during the replay: unlike the wall-clock rates, this does not
            # depend on what else the machine was doing (the bench's own collector included)
            "replay_cpu_seconds": cpu,
            "replay_cpu_us_per_event": {n: round(1e6 * c / len(recs), 1) for n, c in cpu.items()},
        })
        figures.update(await measure.redis_state(stack.redis_url, SERVICES))
        figures["replay_topic_records"] = out["topic_records"]
        say(f"replay: {arrivals} arrivals ({len(recs)} events) in {seconds:.1f}s = {arrivals / seconds:.0f} "
            f"arrivals/s; {out['decisions']} Decisions, {figures['replay_pairs']} pairs")
        figures.update(await latency(stack, keyring, args.latency_seconds, args.timeout))
        say(f"latency: p50/p95/p99 to the first Decision {figures['p50_decision_ms']}/{figures['p95_decision_ms']}/"
            f"{figures['p99_decision_ms']} ms; to a pair {figures['p50_pair_ms']}/{figures['p95_pair_ms']}/"
            f"{figures['p99_pair_ms']} ms")
        figures.update(await measure.quota_vs_incr(stack.redis_url, args.quota_seconds))
        say(f"quota script: {figures['quota_ops']:.0f} ops/s; INCR {figures['incr_ops']:.0f} ops/s")
        figures["idle_cpu_percent"] = await measure.idle_cpu({**sampler.pids, "broker": stack.broker.process.pid}, 3.0)
        later = sampler.sample()
        figures["rss_later_mb"] = {k: round(v, 1) for k, v in later.items()}
        paired = {s for s in out["paired"] if str(s).startswith("BENCH-A")}
    finally:
        await close_probes()
        await stack.stop_async()
    return figures, paired


async def phase_latency(run_dir: Path, keyring: Keyring, args) -> dict:
    """The same steady 200 arrivals/s on a fresh stack: live traffic as a new deployment sees
    it, without the replayed history in the broker's log and the services' state (the replay
    phase measures it again after the history, under the issue's keys)."""
    stack = EmbeddedStack(run_dir / "latency")
    try:
        await stack.start_async()
        got = await latency(stack, keyring, args.latency_seconds, args.timeout)
    finally:
        await close_probes()
        await stack.stop_async()
    say(f"latency on a fresh stack: p50/p95/p99 to the first Decision {got['p50_decision_ms']}/"
        f"{got['p95_decision_ms']}/{got['p99_decision_ms']} ms; to a pair {got['p50_pair_ms']}/"
        f"{got['p95_pair_ms']}/{got['p99_pair_ms']} ms")
    return {f"fresh_{k}": v for k, v in got.items()}


async def phase_scaleout(run_dir: Path, recs: list[Signed], arrivals: int, paired: set | None, args) -> dict:
    stack = EmbeddedStack(run_dir / "scaleout", standby=True, intake_shards=SCALEOUT_SHARDS,
                          enforcement_shards=SCALEOUT_SHARDS)
    try:
        await stack.start_async()
        seconds, out = await replay(stack, recs, f"scale-out replay (intake and enforcement in {SCALEOUT_SHARDS} "
                                    "shards, standbys)", args.timeout)
    finally:
        await close_probes()
        await stack.stop_async()
    mine = {s for s in out["paired"] if str(s).startswith("BENCH-A")}
    same = None if paired is None else mine == paired
    say(f"scale-out: {seconds:.1f}s; same pairs as the single-instance replay: {same}")
    return {"scaleout_replay_seconds": round(seconds, 2), "scaleout_replay_rate": round(arrivals / seconds, 1),
            "scaleout_pairs": len(mine), "scaleout_same_pairs": same, "scaleout_pairs_differing": None if paired is None else len(mine ^ paired),
            "scaleout_intake_shards": SCALEOUT_SHARDS, "scaleout_enforcement_shards": SCALEOUT_SHARDS,
            "scaleout_note": f"intake and enforcement in {SCALEOUT_SHARDS} shards each, every shard with a standby; two "
                             "instances of matching and transfer, of which the lease holder consumes (matching is "
                             "one writer by design); one 2-core machine for all of them"}


def table(f: dict) -> str:
    rows = [
        ("ceiling (bare relay)", f"{f['ceiling_rate']:.0f} msgs/s", ""),
        *[(f"{s} alone", f"{f[f'{s}_alone_rate'] or 0:.0f} records/s", "") for s in SERVICES],
        ("replay", f"{f['replay_arrivals']} arrivals, {f['replay_events']} events in {f['replay_seconds']:.1f} s", ""),
        ("replay_rate", f"{f['replay_rate']:.0f} arrivals/s", TARGETS["replay_rate"]),
        ("replay_ratio", f"{f['replay_ratio']:.3f} of the ceiling", TARGETS["replay_ratio"]),
        ("decision latency", f"p50 {f['p50_decision_ms']} / p95 {f['p95_decision_ms']} / p99 {f['p99_decision_ms']} ms",
         TARGETS["p99_decision_ms"]),
        ("pair latency", f"p50 {f['p50_pair_ms']} / p95 {f['p95_pair_ms']} / p99 {f['p99_pair_ms']} ms", ""),
        *([("decision latency, fresh stack", f"p50 {f['fresh_p50_decision_ms']} / p95 {f['fresh_p95_decision_ms']}"
             f" / p99 {f['fresh_p99_decision_ms']} ms", "")] if "fresh_p99_decision_ms" in f else []),
        ("pairing_rate", f"{f['pairing_rate']:.0f} pairs/s (in process)", TARGETS["pairing_rate"]),
        ("quota script", f"{f['quota_ops']:.0f} ops/s vs INCR {f['incr_ops']:.0f} ({f['quota_ratio']:.2f})",
         TARGETS["quota_ratio"]),
        *[(f"peak RSS {s}", f"{mb:.0f} MB (end of replay {f['rss_end_mb'].get(s, 0):.0f}, "
                            f"later {f['rss_later_mb'].get(s, 0):.0f})", TARGETS["peak_rss_mb"])
          for s, mb in f["peak_rss_mb"].items()],
        ("scale-out replay", f"{f['scaleout_replay_seconds']:.1f} s (intake and enforcement in "
                             f"{f.get('scaleout_intake_shards', 1)} shards, standbys); same pairs: "
                             f"{f['scaleout_same_pairs']}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':{width}}  {'result':62}  target"]
    lines += [f"{a:{width}}  {b:62}  {c}" for a, b, c in rows]
    return "\n".join(lines)


async def main_async(args) -> int:
    keyring_file = REPO / "deploy" / "dev-keys.json"
    keyring = Keyring.from_file(str(keyring_file))
    records, kinds = workload.history(args.arrivals)
    arrivals = workload.arrivals_in(records)
    recs = signed(keyring, records)
    say(f"workload: {arrivals} arrivals, {len(records)} events ({', '.join(f'{k} {v}' for k, v in kinds.items())})")
    waiting = min(20000, max(100, args.arrivals))
    figures: dict = {"bench_cores": measure.cpu_count(), "bench_started": datetime.now(UTC).isoformat(timespec="seconds")}
    say(f"pairing (matching in process): {waiting} arrivals waiting ...")
    figures.update(domain_pairing_rate(waiting, max(50, waiting // 4)))
    say(f"pairing_rate {figures['pairing_rate']:.0f} pairs/s")
    run_dir = Path(tempfile.mkdtemp(prefix="oioo-bench-"))
    say(f"logs under {run_dir}")
    if "alone" in args.phases:
        figures.update(await phase_alone(run_dir, keyring, min(arrivals, 20000), args.timeout))
    if "latency" in args.phases:
        figures.update(await phase_latency(run_dir, keyring, args))
    paired: set | None = None
    if "replay" in args.phases:
        more, paired = await phase_replay(run_dir, keyring, recs, arrivals, args)
        figures.update(more)
    if "scaleout" in args.phases:
        figures.update(await phase_scaleout(run_dir, recs, arrivals, paired, args))
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    path = save(figures, args.out)
    merged = json.loads(path.read_text())
    if merged.get("replay_rate") and merged.get("ceiling_rate"):
        figures["replay_ratio"] = round(merged["replay_rate"] / merged["ceiling_rate"], 4)
        path = save(figures, args.out)
    print()
    try:
        print(table(json.loads(path.read_text())))
    except KeyError as missing:
        print(f"(no table: {missing} not measured yet; run every phase)")
    print(f"\n-> {path}")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--arrivals", type=int, default=int(os.environ.get("BENCH_ARRIVALS", workload.HISTORY)),
                   help="arrivals in the replay (the history scaled down; default all 192,633)")
    p.add_argument("--latency-seconds", type=float, default=float(os.environ.get("BENCH_LATENCY_SECONDS", "30")))
    p.add_argument("--quota-seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=float(os.environ.get("BENCH_TIMEOUT", "3600")))
    p.add_argument("--out", type=Path, default=REPO / ".run" / "bench.json")
    p.add_argument("--phases", type=lambda s: set(s.split(",")), default={"alone", "latency", "replay", "scaleout"},
                   help="comma-separated subset of alone,latency,replay,scaleout (replay includes latency "
                        "after the history, quota and memory); figures not measured are kept from the file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return asyncio.run(main_async(parse(argv)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
