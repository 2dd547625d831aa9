"""Six weeks of the exchange in a few minutes: `python -m deploy.demo` (`make demo`).

Starts a fresh embedded stack (Tansu broker, Redis, the four services), then plays the
outside world (deploy.sim.world) through the contract's inbound topics only, signed with the
development keyring, in event time from Monday 2025-09-01, in steps of 6 simulated hours.
Each step sends what is due, ends with a ClockTick on ops.control.v1, waits on the settle
barrier, then reads the outbound topics to react (France answers requests, escorts execute
accepted returns, admitted people arrive, returned people come back). Operator controls are
sent at the start of their step and settled on their own, so every later event is applied
after them.

At the end: the weekly figures (latest WeeklyBalance per week), a summary, the Joint
Committee report for the demo's weeks (CSV + PNG under .run/demo-report/, written by the same
code as `oioo report`), and the contract's invariants checked on what was observed
(deploy.sim.checks), each PASS or FAIL. Exits 0 only if all pass; the stack is stopped in
every case. A progress bar (rate and ETA) follows the simulated steps.

Options: --seed (default 20250901), --days (default 42), --keep-logs, --dump PATH.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.text import Text

from deploy.sim import checks
from deploy.sim.kafka import OUTBOUND_TOPICS, Collector, SignedPublisher, close_probes, settle
from deploy.sim.world import SIM_START, Out, World
from shared import topics as T
from deploy.embedded import REPO_ROOT, EmbeddedStack, free_port, terminate
from services.ops.figures import latest_balances
from services.ops.report import write_report
from services.ops.topics_reader import read_all
from services.ops.whatif_history import DEMO_HISTORY, read_history, write_history
from shared.signing import Keyring
from shared.timeutil import iso_week

STEP = timedelta(hours=6)
SETTLE_TIMEOUT = 120.0
REPORT_DIR = REPO_ROOT / ".run" / "demo-report"
console = Console()


class RateColumn(ProgressColumn):
    """Simulated days per wall-clock second (a step is a quarter of a day)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed / 4:5.2f} days/s" if speed else "  ?   days/s", style="progress.data.speed")


def progress_bar() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console)


async def publish(pub: SignedPublisher, outs: list[Out]) -> None:
    futures = []
    for o in outs:
        futures.append((o, await pub.send(o.topic, o.key, o.value, o.headers)))
    await pub.flush()
    for o, fut in futures:
        if o.bad is not None:
            where = pub.where(fut)
            o.bad.partition, o.bad.offset = where.partition, where.offset


async def settle_and_drain(stack: EmbeddedStack, col: Collector) -> tuple[float, list]:
    """The settle barrier, then what was published since the last one."""
    waited = await settle(stack.bootstrap, timeout=SETTLE_TIMEOUT)
    return waited, await col.drain()


async def simulate(stack: EmbeddedStack, world: World, obs: checks.Observed, *,
                   pub: SignedPublisher | None = None,
                   wait: Callable[[EmbeddedStack, Collector], Awaitable[tuple[float, list]]] = settle_and_drain,
                   ) -> dict:
    """Play `world` against `stack`. `pub` and `wait` (the barrier) are replaceable so that
    deploy.chaos can drive the same world through a stack it is breaking."""
    pub = pub or SignedPublisher(stack.bootstrap, Keyring.from_file(stack.keys_file))
    # the outbound topics, and ops.control.v1 too so that every ops.* topic is scanned for personal data
    col = Collector(stack.bootstrap, (*OUTBOUND_TOPICS, T.OPS_CONTROL))
    await pub.start()
    await col.start()
    stats = {"settle": 0.0, "settles": 0, "sent": 0}

    async def barrier() -> None:
        waited, records = await wait(stack, col)
        stats["settle"] += waited
        stats["settles"] += 1
        # requests first: a Decision about a request (held, accepted) may come in the same drain
        records.sort(key=lambda r: r.topic != T.LIAISON_UK_RETURN_REQUESTS)
        for rec in records:
            doc = obs.add(rec.topic, rec.partition, rec.offset, rec.value)
            if doc is not None:
                world.observe(rec.topic, doc)

    progress = progress_bar()
    try:
        world.plan()
        steps = world.days * 4
        day_sent, day_settle, day_t0 = Counter(), 0.0, time.monotonic()
        progress.start()
        bar = progress.add_task("simulating (steps of 6 h)", total=steps)
        for step in range(steps):
            t0 = world.start + step * STEP
            t1 = t0 + STEP
            world.step_end = t1
            control = world.run_due(t1, control=True)
            if control:
                await publish(pub, control)
                day_sent.update(o.event_type for o in control)
                await barrier()
            outs = world.run_due(t1, control=False)
            # the last tick stays inside the last week, so no pairs form for the week after
            outs.append(world.tick(t1 if step < steps - 1 else t1 - timedelta(seconds=1)))
            await publish(pub, outs)
            day_sent.update(o.event_type for o in outs)
            before = stats["settle"]
            await barrier()
            day_settle += stats["settle"] - before
            progress.advance(bar)
            if step % 4 == 3:
                day = t0.date()
                n = sum(day_sent.values())
                progress.console.print(
                    f"day {step // 4 + 1:2d} {day} {iso_week(t0)}: sent {n:4d} "
                    f"(arrivals {day_sent['ArrivalRecorded']:2d}, applications "
                    f"{day_sent['ExpressionOfInterestSubmitted']:2d}, answers {day_sent['ReturnRequestAnswered']:2d}, "
                    f"movements {day_sent['ReturnExecuted'] + day_sent['ReturnFailed'] + day_sent['AdmissionArrived']:2d})"
                    f" | requests {len(world.requests):4d}, executed {len(world.executed_requests):3d}, "
                    f"offers {len(world.offers_seen):3d} | settle {day_settle:4.1f}s, wall {time.monotonic() - day_t0:4.1f}s",
                    highlight=False, soft_wrap=True)
                stats["sent"] += n
                day_sent, day_settle, day_t0 = Counter(), 0.0, time.monotonic()
    finally:
        progress.stop()
        for closer in (pub.stop, col.stop, close_probes):
            try:
                await closer()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
    return stats


async def main_async(args: argparse.Namespace) -> int:
    wall0 = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="oioo-demo-"))
    stack = EmbeddedStack(run_dir)
    ok = False
    dashboard = None
    try:
        print(f"starting the embedded stack (logs in {run_dir / 'logs'}) ...", flush=True)
        await stack.start_async()
        print(f"stack up in {time.monotonic() - wall0:.1f}s: broker {stack.bootstrap}, redis {stack.redis_url}")
        dashboard_url, dashboard = await start_dashboard_for(stack)
        print(f"dashboard: {dashboard_url}", flush=True)
        world = World(args.seed, Keyring.from_file(stack.keys_file), days=args.days, start=SIM_START)
        obs = checks.Observed()
        sim0 = time.monotonic()
        stats = await simulate(stack, world, obs)
        sim_wall = time.monotonic() - sim0
        dead = [n for n, s in stack.services.items() if not s.alive]
        dead += [f"{n} (restarted {k}x)" for n, k in stack.restarts.items() if k]
        if args.dump:
            dump(args.dump, world, obs)
        report = await joint_committee_report(stack, world)
        # the stack goes when the demo ends: its history stays for `oioo whatif`
        history = write_history(DEMO_HISTORY, await read_history(stack.bootstrap))

        print()
        print(f"weekly figures (latest WeeklyBalance per ISO week), {world.start:%Y-%m-%d} + {args.days} days:")
        print(checks.weekly_table(obs))
        print()
        print("summary:")
        print(checks.summary(world, obs))
        print()
        print(f"Joint Committee report ({len(report.weeks)} week(s)): {report.csv} and {report.png}")
        print(f"history for `oioo whatif` ({history} records): {DEMO_HISTORY}")
        print()
        print("invariants:")
        results = checks.check_all(world, obs)
        if obs.unreadable:
            results.append(checks.Result("every outbound record is JSON", False, f"{len(obs.unreadable)} unreadable",
                                         obs.unreadable[:5]))
        results.append(checks.Result("every service ran throughout (no exit, no restart)", not dead,
                                     "all four up" if not dead else f"exited: {', '.join(dead)}"))
        for r in results:
            print(f"  {'PASS' if r.ok else 'FAIL'}  {r.name}: {r.detail}")
            for p in r.problems:
                print(f"          - {p}")
        ok = all(r.ok for r in results)
        print()
        print(f"simulated {args.days} days in {sim_wall:.1f}s ({stats['settles']} settles, "
              f"{stats['settle']:.1f}s waiting on them); {stats['sent']} events sent; "
              f"wall time {time.monotonic() - wall0:.1f}s including stack start")
        if dead:
            print(stack.log_tails(30))
        print("ALL PASS" if ok else "SOME INVARIANTS FAILED")
        if args.keep:
            print(f"the stack and the dashboard stay up: {dashboard_url} (Ctrl-C to stop)", flush=True)
            await asyncio.Event().wait()
        return 0 if ok else 1
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            print(f"demo failed: {exc!r}", file=sys.stderr)
            print(stack.log_tails(30), file=sys.stderr)
        raise
    finally:
        if dashboard is not None:
            terminate(dashboard, 5)
        await stack.stop_async()
        if ok and not args.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"logs kept in {run_dir / 'logs'}")


async def start_dashboard_for(stack: EmbeddedStack):
    """The live dashboard on the demo's stack: its URL and process (the demo stops it)."""
    from services.ops.dashboard import start_dashboard, wait_dashboard

    port = free_port()
    proc = start_dashboard(stack.env(), port, stack.log_path("dashboard"))
    url = f"http://127.0.0.1:{port}/"
    await asyncio.get_running_loop().run_in_executor(None, wait_dashboard, url, 30, proc)
    return url, proc


async def joint_committee_report(stack: EmbeddedStack, world: World):
    """The demo's weeks as `oioo report` writes them, read back from ops.balance.v1."""
    recs = await read_all(stack.bootstrap, (T.OPS_BALANCE,))
    balances = latest_balances(r.doc for r in recs if r.doc)
    last = world.start + timedelta(days=world.days) - timedelta(seconds=1)
    return write_report(REPORT_DIR, balances, iso_week(world.start), iso_week(last))


def dump(path: str, world: World, obs: checks.Observed) -> None:
    """Everything observed, one JSON line per outbound record, for a closer look afterwards."""
    with open(path, "w", encoding="utf-8") as f:
        for topic, recs in obs.records.items():
            for partition, offset, doc, _ in recs:
                f.write(json.dumps({"topic": topic, "partition": partition, "offset": offset, "event": doc}) + "\n")
    print(f"observed records written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20250901)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--keep", action="store_true", default=bool(os.environ.get("KEEP")),
                        help="leave the stack and the dashboard up after the run, until Ctrl-C (env KEEP=1)")
    parser.add_argument("--dump", metavar="PATH", help="write every observed outbound record to PATH (JSON lines)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - already reported, stack already stopped
        return 1


if __name__ == "__main__":
    sys.exit(main())
