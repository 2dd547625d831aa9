"""`python -m deploy.chaos` (`make chaos`): the demo's world through a house that is being broken.

See deploy/chaos/__init__.py for what it does and why the reference is a fault-free re-run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from deploy import demo
from deploy.chaos import faults
from deploy.chaos.faults import Chaos
from deploy.chaos.house import House
from deploy.chaos.verify import Findings, dump, read_everything, verify
from deploy.embedded import REPO_ROOT, EmbeddedStack
from deploy.sim import checks
from deploy.sim.kafka import OUTBOUND_TOPICS, Collector, Record, SettleTimeout, SignedPublisher, close_probes, settle
from deploy.sim.world import SIM_START, Out, World
from shared.settings import Settings
from shared.signing import Keyring

# a barrier may sit through a broker pause and a rebuild from the log; the short run fails sooner
SETTLE_TIMEOUT = {False: 600.0, True: 180.0}
RESULT_FILE = REPO_ROOT / ".run" / "chaos.json"


class RecordingWorld(World):
    """The demo's world, keeping everything it sent (the inputs the checks start from)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[Out] = []

    def run_due(self, until, control=None):
        outs = super().run_due(until, control)
        self.sent += outs
        return outs

    def tick(self, when):
        out = super().tick(when)
        self.sent.append(out)
        return out

    def progress(self) -> float:
        return (self.step_end - self.start) / (self.end - self.start)


class FirstSeen(checks.Observed):
    """The world reacts once per outbound event id, as a consumer that drops repeats does."""

    def __init__(self):
        super().__init__()
        self._ids: set[tuple[str, str]] = set()

    def add(self, topic, partition, offset, value):
        try:
            key = (topic, json.loads(value).get("event_id"))
        except ValueError:
            key = None
        if key is not None and topic in OUTBOUND_TOPICS:
            if key in self._ids:
                return None
            self._ids.add(key)
        return super().add(topic, partition, offset, value)


async def patient_settle(bootstrap: str, timeout: float) -> float:
    """The settle barrier, sitting through a stopped broker (its clients time out meanwhile)."""
    t0 = time.monotonic()
    while True:
        try:
            await settle(bootstrap, timeout=max(1.0, timeout - (time.monotonic() - t0)))
            return time.monotonic() - t0
        except SettleTimeout:
            raise
        except Exception:  # noqa: BLE001 - the broker stopped or restarting: new clients, again
            if time.monotonic() - t0 > timeout:
                raise
            await close_probes()
            await asyncio.sleep(0.5)


def barrier(chaos: Chaos, timeout: float):
    async def wait(stack: EmbeddedStack, col: Collector) -> tuple[float, list]:
        t0 = time.monotonic()
        await chaos.keep_up()
        await patient_settle(stack.bootstrap, timeout)
        async with chaos.broker_lock:  # no broker pause starts between the barrier and the read
            await patient_settle(stack.bootstrap, timeout)
            records = await col.drain(timeout=120)
        return time.monotonic() - t0, records
    return wait


@dataclass
class Outcome:
    """A finished run: the numbers, and what they came from (a test re-checks altered copies)."""

    report: dict
    found: Findings
    world: RecordingWorld
    logs: dict[str, list[Record]]
    settings: Settings


async def run(args: argparse.Namespace) -> Outcome:
    wall0 = time.monotonic()
    profile = faults.SHORT if args.short else faults.FULL
    days = args.days or (3 if args.short else 42)
    settle_timeout = SETTLE_TIMEOUT[args.short]
    rng = random.Random(args.seed)
    run_dir = Path(tempfile.mkdtemp(prefix="oioo-chaos-"))
    stack = EmbeddedStack(run_dir, services=())
    house = House(stack, random.Random(rng.random()))
    chaos: Chaos | None = None
    fault_task: asyncio.Task | None = None
    ok = False
    try:
        print(f"starting the embedded stack and two instances of each service (logs in {run_dir / 'logs'}) ...",
              flush=True)
        await stack.start_async()
        await house.start()
        print(f"up in {time.monotonic() - wall0:.1f}s: broker {stack.bootstrap}, redis {stack.redis_url}", flush=True)
        keyring = Keyring.from_file(stack.keys_file)
        world = RecordingWorld(args.seed, keyring, days=days, start=SIM_START)
        chaos = Chaos(house, random.Random(rng.random()), profile, world.progress)
        fault_task = asyncio.create_task(chaos.run(faults.plan(random.Random(rng.random()), profile)))
        pub = SignedPublisher(stack.bootstrap, keyring, request_timeout_ms=180_000)
        try:
            stats = await demo.simulate(stack, world, FirstSeen(), pub=pub, wait=barrier(chaos, settle_timeout))
        finally:
            world.step_end = world.end
        await fault_task  # whatever is left of the plan runs now
        print("world done; waiting for every service to settle ...", flush=True)
        await patient_settle(stack.bootstrap, settle_timeout)
        await house.wait_active(settle_timeout)
        await patient_settle(stack.bootstrap, settle_timeout)
        await close_probes()
        logs = await read_everything(stack.bootstrap)
        settings = Settings.from_env()
        found = verify(world, world.sent, logs, settings)
        report = numbers(chaos, house, found, days, stats, time.monotonic() - wall0)
        print_table(report, found)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"numbers written to {args.out}")
        ok = report["passed"]
        if not ok:
            dump(logs, run_dir / "logs" / "topics.jsonl")
        return Outcome(report, found, world, logs, settings)
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            print(f"chaos failed: {exc!r}", file=sys.stderr)
            print(log_tails(stack, house), file=sys.stderr)
        raise
    finally:
        if fault_task is not None and not fault_task.done():
            fault_task.cancel()
            await asyncio.gather(fault_task, return_exceptions=True)
        if chaos is not None:
            chaos.resume_broker()
        await house.stop()
        await close_probes()
        await stack.stop_async()
        if ok and not args.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"logs kept in {run_dir / 'logs'}")


def numbers(chaos: Chaos, house: House, found: Findings, days: int, stats: dict, wall: float) -> dict:
    injected = dict(chaos.injected)
    return {
        "days": days,
        "faults": injected,
        "faults_total": sum(injected.values()),
        "broker_pause_seconds": chaos.pause_seconds,
        "timeline": chaos.timeline,
        "exits": dict(house.exits),
        "restarts": house.restarts,
        "unexpected_exits": house.unexpected,
        "inbound_events": found.inbound,
        "outbound_events": found.outbound,
        "internal_events": found.internal,
        "reference_events": found.reference,
        "duplicate_deliveries": found.duplicates,
        "events_lost": len(found.lost),
        "events_changed": len(found.changed),
        "events_extra": len(found.extra),
        "invariant_violations": len(found.violations),
        "settles": stats.get("settles"),
        "wall_seconds": round(wall, 1),
        "passed": not (found.lost or found.changed or found.extra or found.violations),
    }


def print_table(report: dict, found: Findings) -> None:
    rows = [(f"fault: {k}", v) for k, v in sorted(report["faults"].items())]
    rows += [(f"exit: {k}", v) for k, v in sorted(report["exits"].items())]
    rows += [("service restarts by the supervisor", report["restarts"]),
             ("inbound events", report["inbound_events"]),
             ("outbound events", report["outbound_events"]),
             ("internal events", report["internal_events"]),
             ("duplicate deliveries seen", report["duplicate_deliveries"]),
             ("events lost", report["events_lost"]),
             ("events whose content changed under the same id", report["events_changed"]),
             ("events published that the inputs and the fault-free run do not account for", report["events_extra"]),
             ("invariant violations", report["invariant_violations"])]
    width = max(len(r[0]) for r in rows)
    print()
    print("faults, at what point of the simulated run:")
    for line in report["timeline"]:
        print(f"  {line}")
    print(f"chaos over {report['days']} simulated days (broker paused {report['broker_pause_seconds']} s); "
          f"fault-free re-run: {report['reference_events']}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>7}")
    for title, items in (("lost", found.lost), ("changed", found.changed), ("extra", found.extra)):
        for line in items[:10]:
            print(f"  {title}: {line}")
        if len(items) > 10:
            print(f"  {title}: ... and {len(items) - 10} more")
    for r in found.results:
        print(f"  {'PASS' if r.ok else 'FAIL'}  {r.name}: {r.detail}")
        for p in r.problems:
            print(f"          - {p}")
    for line in report["unexpected_exits"]:
        print(f"  unexpected exit: {line}")
    print(f"wall time {report['wall_seconds']}s")
    print("CHAOS PASSED" if report["passed"] else "CHAOS FAILED")


def log_tails(stack: EmbeddedStack, house: House, lines: int = 25) -> str:
    from deploy.embedded import tail

    names = ["broker", "redis", *house.instances]
    return "\n".join(f"--- {n}:\n{tail(stack.log_path(n), lines)}" for n in names if stack.log_path(n).exists())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.chaos",
                                     description="the demo's world through a house under faults")
    parser.add_argument("--seed", type=int, default=20250901)
    parser.add_argument("--days", type=int, default=None, help="simulated days (default 42; 3 with --short)")
    parser.add_argument("--short", action="store_true", help="a few days and a handful of faults, for CI")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT_FILE, help=f"where the numbers go (default {RESULT_FILE})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return 0 if asyncio.run(run(args)).report["passed"] else 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - already reported, stack already stopped
        return 1
