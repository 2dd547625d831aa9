"""The development stack in the background: `python -m deploy.stack up|down|status`.

Why: a developer (and the demo) wants the house running while they poke at it, without Docker.
`up` starts a fresh in-memory Tansu broker, Redis (the server at env REDIS_URL if one answers
there, else our own redis-server) and the four services as detached processes that outlive this
CLI, waits until every service has touched its ready file, and writes `.run/stack.env` for
clients. `down` stops what `up` started (services first) using the pid files; it is idempotent.
Everything lives under `.run/`: pids/, logs/, ready/, redis/, stack.env.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from deploy.embedded import REPO_ROOT, SERVICES, EmbeddedStack, wait_ready

RUN_DIR = REPO_ROOT / ".run"
PID_DIR = RUN_DIR / "pids"
STACK_ENV = RUN_DIR / "stack.env"
STOP_ORDER = (*SERVICES, "broker", "redis")


# --------------------------------------------------------------------------- pid files

def _write_pid(name: str, proc) -> None:
    PID_DIR.mkdir(parents=True, exist_ok=True)
    entry = {"pid": proc.pid, "started": _start_time(proc.pid), "cmd": list(map(str, proc.args))}
    (PID_DIR / f"{name}.pid").write_text(json.dumps(entry))


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of stat: start time in clock ticks


def _read_pids() -> dict[str, dict]:
    out = {}
    for path in sorted(PID_DIR.glob("*.pid")) if PID_DIR.exists() else []:
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            out[path.stem] = {"pid": None, "cmd": []}
    return out


def _is_ours(entry: dict) -> bool:
    """The pid is alive and is still the process we started: pid plus start time identify it
    (pids get reused; redis-server rewrites its command line, so that cannot be compared)."""
    pid = entry.get("pid")
    if not isinstance(pid, int):
        return False
    if Path("/proc/self/stat").exists():
        fields = _stat(pid)
        return bool(fields) and fields[0] != "Z" and fields[19] == entry.get("started")
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _stop_pid(name: str, entry: dict, timeout: float = 10.0) -> None:
    pid = entry["pid"]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _is_ours(entry):
            return
        try:
            # `up` made each process a session leader, so its group is exactly what it spawned.
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _is_ours(entry):
            time.sleep(0.05)
        if _is_ours(entry) and sig == signal.SIGTERM:
            print(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing it")


# --------------------------------------------------------------------------- commands

def up(timeout: float) -> int:
    running = {n: e for n, e in _read_pids().items() if _is_ours(e)}
    if running:
        if set(running) >= {"broker", *SERVICES}:
            print("stack already up")
            return status()
        print(f"stack is partly running ({', '.join(running)}); run `make down` first", file=sys.stderr)
        return 1
    _clean()
    for old_log in (RUN_DIR / "logs").glob("*.log"):
        old_log.unlink()  # a fresh stack gets fresh logs
    stack = EmbeddedStack(RUN_DIR, detach=True, redis_url=os.environ.get("REDIS_URL"))
    t0 = time.monotonic()
    try:
        asyncio.run(stack.start_infra_async())
        _write_pid("broker", stack.broker.process)
        if stack.redis.owned:
            _write_pid("redis", stack.redis.process)
        for name in SERVICES:
            _write_pid(name, stack.spawn_service(name).process)
        wait_ready([s.ready_file for s in stack.services.values()], timeout, list(stack.services.values()))
    except BaseException as exc:
        print(f"stack did not come up: {exc}", file=sys.stderr)
        print(f"logs are kept in {RUN_DIR / 'logs'}", file=sys.stderr)
        stack.stop()
        _clean()
        return 1
    STACK_ENV.write_text("".join(f"{k}={v}\n" for k, v in stack.env().items()))
    where = "own redis-server" if stack.redis.owned else "existing server at REDIS_URL"
    print(f"stack up in {time.monotonic() - t0:.1f}s: broker {stack.bootstrap}, redis {stack.redis_url} ({where})")
    print(f"environment for clients: {STACK_ENV}")
    return 0


def down() -> int:
    pids = _read_pids()
    if not pids:
        print("nothing running")
    for name in sorted(pids, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1):
        _stop_pid(name, pids[name])
        print(f"stopped {name}")
    _clean()
    return 0


def status() -> int:
    pids = _read_pids()
    if not pids:
        print("stack is down")
        return 3
    ok = True
    for name in sorted(pids, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1):
        alive = _is_ours(pids[name])
        ok &= alive
        ready = "" if name not in SERVICES else (
            " ready" if (RUN_DIR / "ready" / name).exists() else " not ready")
        print(f"{name:12} pid {pids[name].get('pid')!s:8} {'running' if alive else 'DEAD'}{ready}")
    if STACK_ENV.exists():
        print(STACK_ENV.read_text(), end="")
    return 0 if ok else 1


def _clean() -> None:
    for path in [*PID_DIR.glob("*.pid"), *(RUN_DIR / "ready").glob("*"), STACK_ENV]:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("STACK_READY_TIMEOUT", 90)),
                        help="seconds to wait for every service to be ready (default 90)")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.timeout)
    return down() if args.command == "down" else status()


if __name__ == "__main__":
    sys.exit(main())
