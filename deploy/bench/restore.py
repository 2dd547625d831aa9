"""The peak memory of a service restoring its state: `python -m deploy.bench.restore`.

    python -m deploy.bench.restore --arrivals N [--save FILE.rdb]
        replays N arrivals of the history (all 192,633 by default) on a fresh embedded stack,
        then stops and restarts each service in turn and reports the restarted process's peak
        RSS (VmHWM) once it is active again (its state loaded from Redis, nothing left to catch
        up), and the seconds it took. `--save` keeps Redis's state afterwards as an RDB file.
    python -m deploy.bench.restore --rdb FILE.rdb
        no broker: a Redis server started from that file, and for each service a fresh process
        that loads the snapshot (`RecordStore.load`) and restores the service from it, as a
        restart does, and reports its peak RSS and seconds. Cheap to repeat: the same state
        for code before and after a change.

Nothing here asserts a figure; it prints them (and `--out` writes them as JSON).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.bench import measure, workload
from deploy.embedded import SERVICES, EmbeddedStack, start_redis


def say(text: str) -> None:
    print(text, flush=True)


async def _restart(stack: EmbeddedStack, service: str, limit: float) -> dict:
    """Stop the service, start it again, and follow the new process's RSS until it is active."""
    stack.stop_service(service)
    t0 = time.monotonic()
    svc = stack.spawn_service(service)
    peak = 0.0
    while not svc.active:
        if not svc.alive:
            raise RuntimeError(f"{service} died while restoring; see {svc.log_path}")
        if time.monotonic() - t0 > limit:
            raise TimeoutError(f"{service} not active after {limit:.0f}s")
        got = measure.rss_mb(svc.process.pid)
        peak = max(peak, got.get("VmRSS", 0.0), got.get("VmHWM", 0.0))
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - t0
    got = measure.rss_mb(svc.process.pid)
    return {"peak_mb": round(max(peak, got.get("VmHWM", 0.0)), 1), "active_rss_mb": round(got.get("VmRSS", 0.0), 1),
            "seconds_to_active": round(seconds, 2)}


async def after_replay(args) -> dict:
    from deploy.bench.__main__ import replay, signed
    from shared.signing import Keyring

    keyring = Keyring.from_file(str(Path(__file__).resolve().parents[1] / "dev-keys.json"))
    records, _ = workload.history(args.arrivals)
    recs = signed(keyring, records)
    run_dir = Path(tempfile.mkdtemp(prefix="oioo-restore-"))
    say(f"logs under {run_dir}")
    stack = EmbeddedStack(run_dir / "stack")
    out: dict = {"arrivals": workload.arrivals_in(records), "events": len(recs)}
    try:
        await stack.start_async()
        sampler = measure.MemorySampler(measure.service_pids(stack))
        sampler.start()
        seconds, _ = await replay(stack, recs, "replay", args.timeout)
        await sampler.stop()
        out["replay_seconds"] = round(seconds, 2)
        out["replay_peak_mb"] = {k: round(v, 1) for k, v in sampler.peak.items()}
        out.update(await measure.redis_state(stack.redis_url, SERVICES))
        say(f"replay: {seconds:.1f}s; peak RSS {out['replay_peak_mb']}; Redis {out['redis_used_mb']} MB, "
            f"records {out['redis_records']}")
        out["restart"] = {}
        for service in args.services:
            got = await _restart(stack, service, args.timeout)
            out["restart"][service] = got
            say(f"restart {service}: peak {got['peak_mb']} MB, {got['active_rss_mb']} MB once active, "
                f"{got['seconds_to_active']} s")
        if args.save:
            _save_rdb(stack.redis_url, stack.redis.workdir, args.save)
            say(f"Redis state saved to {args.save}")
    finally:
        from deploy.sim.kafka import close_probes

        await close_probes()
        await stack.stop_async()
    return out


def _save_rdb(url: str, workdir: Path, to: Path) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.save()
        name = client.config_get("dbfilename")["dbfilename"]
    finally:
        client.close()
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(workdir) / name, to)


def from_rdb(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="oioo-restore-redis-"))
    shutil.copyfile(args.rdb, workdir / "dump.rdb")  # the server loads it when it starts
    server = start_redis(None, workdir=workdir)
    out: dict = {"rdb": str(args.rdb), "restore": {}}
    try:
        for service in args.services:
            child = subprocess.run([sys.executable, "-m", "deploy.bench.restore", "--child", service,
                                    "--redis-url", server.url], capture_output=True, text=True,
                                   cwd=Path(__file__).resolve().parents[2])
            if child.returncode:
                raise RuntimeError(f"{service}: {child.stderr[-2000:]}")
            got = json.loads(child.stdout.strip().splitlines()[-1])
            out["restore"][service] = got
            say(f"restore {service}: {got['records']} records, peak {got['peak_mb']} MB "
                f"({got['before_mb']} MB before loading), {got['settled_mb']} MB after, {got['seconds']} s "
                f"(then {got['settle_seconds']} s to settle)")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


async def child(service: str, redis_url: str) -> dict:
    """In this (fresh) process: what a restart does with the state, without a broker."""
    import importlib

    from redis.asyncio import Redis

    from shared import heap
    from shared.settings import Settings
    from shared.store import RecordStore

    heap.tune()
    os.environ.setdefault("SIGNING_KEYS_FILE", str(Path(__file__).resolve().parents[1] / "dev-keys.json"))
    os.environ["REDIS_URL"] = redis_url
    settings = Settings.from_env()
    runner = importlib.import_module(f"services.{service}.app").build(settings)
    # without the service's 5 s socket timeout: a read that takes longer is measured, not retried
    runner.store = RecordStore(Redis.from_url(redis_url, socket_timeout=None), service)
    before = measure.rss_mb(os.getpid())["VmRSS"]
    t0 = time.monotonic()
    counted: list = []

    class Counting:  # the service's own rebuild, as a restart does it, counting the records
        def __init__(self):
            self.inner, self.records = runner.service.restoring(), 0
            counted[:] = [self]

        def add(self, records):
            self.records += len(records)
            self.inner.add(records)

    snap = await runner.store.load(Counting)
    records = counted[0].records
    seen = dict(snap.seen)
    counted[0].inner.finish(snap)
    seconds = time.monotonic() - t0
    del snap
    t1 = time.monotonic()
    heap.settle()
    settle = time.monotonic() - t1
    got = measure.rss_mb(os.getpid())
    await runner.store.redis.aclose()
    await runner.redis.aclose()
    return {"records": records, "seen": len(seen), "before_mb": round(before, 1), "peak_mb": round(got["VmHWM"], 1),
            "settled_mb": round(got["VmRSS"], 1), "seconds": round(seconds, 2), "settle_seconds": round(settle, 3)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.bench.restore", description=__doc__.split("\n\n")[0])
    p.add_argument("--arrivals", type=int, default=workload.HISTORY)
    p.add_argument("--services", type=lambda s: s.split(","), default=list(SERVICES))
    p.add_argument("--save", type=Path, help="after the restarts, keep Redis's state in this RDB file")
    p.add_argument("--rdb", type=Path, help="measure load and restore in process from this RDB file instead")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--redis-url", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.redis_url))))
        return 0
    out = from_rdb(args) if args.rdb else asyncio.run(after_replay(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
