"""The development stack in the background: `python -m deploy.stack up|down|status`.

Why: a developer (and the demo) wants the house running while they poke at it, without Docker.
`up` starts a fresh in-memory Tansu broker and Redis (the server at env REDIS_URL if one answers
there, else our own) as detached processes, then `python -m deploy.supervise`, a detached
supervisor that owns the services: it starts every instance (with `--standby`, a second one of
each service: `intake-2`, ...), restarts any that dies within 2 s (as compose's
`restart: unless-stopped` does in production) and rewrites its pid file. `up` returns once the
first instance of every service is ready, and writes `.run/stack.env` for clients:

    KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, SIGNING_KEYS_FILE,
    HEALTH_URLS=intake=http://127.0.0.1:PORT/healthz,intake-2=...   (instance=url, comma-separated)
    DASHBOARD_URL=http://127.0.0.1:PORT/                            (the live ops dashboard)
    METRICS_URLS=intake=http://127.0.0.1:PORT/metrics,...           (same form; /readyz beside them)

`deploy.embedded.parse_url_map` reads those two back. `down` stops the supervisor first (it
stops its services), then anything still alive from the pid files, then the broker and Redis;
it is idempotent. Everything lives under the run directory (default `.run/`): pids/, logs/,
ready/, redis/, supervise.json (the supervisor's plan), stack.env.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.embedded import REPO_ROOT, SERVICES, EmbeddedStack, free_port, instance_names, spawn, tail

SUPERVISOR = "supervise"
DASHBOARD = "dashboard"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ready(self) -> Path:
        return self.root / "ready"

    @property
    def stack_env(self) -> Path:
        return self.root / "stack.env"

    @property
    def plan(self) -> Path:
        return self.root / "supervise.json"


DEFAULT_RUN = RunDir(REPO_ROOT / ".run")


# --------------------------------------------------------------------------- pid files

def write_pid(run: RunDir, name: str, proc, **extra) -> None:
    run.pids.mkdir(parents=True, exist_ok=True)
    entry = {"pid": proc.pid, "started": _start_time(proc.pid), "cmd": list(map(str, proc.args)), **extra}
    tmp = run.pids / f".{name}.pid.tmp"
    tmp.write_text(json.dumps(entry))
    tmp.replace(run.pids / f"{name}.pid")  # readers never see half a file


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22 of stat: start time in clock ticks


def read_pids(run: RunDir) -> dict[str, dict]:
    out = {}
    for path in sorted(run.pids.glob("*.pid")) if run.pids.exists() else []:
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            out[path.stem] = {"pid": None, "cmd": []}
    return out


def is_ours(entry: dict) -> bool:
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
        if not is_ours(entry):
            return
        try:
            # every process here is a session leader, so its group is exactly what it spawned
            # (the supervisor's services are session leaders of their own: not in its group).
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_ours(entry):
            time.sleep(0.05)
        if is_ours(entry) and sig == signal.SIGTERM:
            print(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing it")


def _order(name: str) -> int:
    """Stop order: the supervisor, the service instances, the broker, Redis."""
    return {DASHBOARD: 0, SUPERVISOR: 0, "broker": 2, "redis": 3}.get(name, 1)


# --------------------------------------------------------------------------- commands

def up(timeout: float, standby: bool = False, run: RunDir = DEFAULT_RUN, intake_shards: int = 1,
       enforcement_shards: int = 1) -> int:
    running = {n: e for n, e in read_pids(run).items() if is_ours(e)}
    if running:
        if set(running) >= {"broker", SUPERVISOR, *SERVICES}:
            print("stack already up")
            return status(run)
        print(f"stack is partly running ({', '.join(running)}); run `make down` first", file=sys.stderr)
        return 1
    _clean(run)
    for old_log in run.logs.glob("*.log"):
        old_log.unlink()  # a fresh stack gets fresh logs
    stack = EmbeddedStack(run.root, detach=True, redis_url=os.environ.get("REDIS_URL"),
                          standby=standby, supervise=False, intake_shards=intake_shards,
                          enforcement_shards=enforcement_shards)
    t0 = time.monotonic()
    try:
        asyncio.run(stack.start_infra_async())
        write_pid(run, "broker", stack.broker.process)
        if stack.redis.owned:
            write_pid(run, "redis", stack.redis.process)
        stack.plan_instances()
        run.plan.write_text(json.dumps({
            "bootstrap": stack.bootstrap, "redis_url": stack.redis_url, "keys_file": str(stack.keys_file),
            "services": list(stack.service_names), "standby": standby, "timeout": timeout,
            "intake_shards": intake_shards, "enforcement_shards": enforcement_shards,
            "health_ports": {n: i.health_port for n, i in stack.instances.items()},
        }, indent=2))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        supervisor = spawn([sys.executable, "-m", "deploy.supervise", "--run-dir", str(run.root)],
                           run.logs / f"{SUPERVISOR}.log", env=env, cwd=REPO_ROOT, detach=True)
        write_pid(run, SUPERVISOR, supervisor)
        _wait_supervisor(run, supervisor, timeout + 15)
    except BaseException as exc:
        print(f"stack did not come up: {exc}", file=sys.stderr)
        print(f"logs are kept in {run.logs}", file=sys.stderr)
        _stop_all(run, quiet=True)
        stack.stop()
        _clean(run)
        return 1
    env = stack.env()
    try:
        env["DASHBOARD_URL"] = _start_dashboard(run, env)
    except BaseException as exc:
        print(f"the dashboard did not come up: {exc}", file=sys.stderr)
        _stop_all(run, quiet=True)
        stack.stop()
        _clean(run)
        return 1
    run.stack_env.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    where = "own server" if stack.redis.owned else "existing server at REDIS_URL"
    print(f"stack up in {time.monotonic() - t0:.1f}s: broker {stack.bootstrap}, redis {stack.redis_url} ({where})")
    print(f"instances: {', '.join(stack.instances)} (supervised; logs in {run.logs})")
    print(f"environment for clients: {run.stack_env}")
    print(f"dashboard: {env['DASHBOARD_URL']}")
    return 0


def _start_dashboard(run: RunDir, env: dict[str, str]) -> str:
    from services.ops.dashboard import start_dashboard, wait_dashboard

    port = free_port()
    proc = start_dashboard(env, port, run.logs / f"{DASHBOARD}.log", detach=True)
    write_pid(run, DASHBOARD, proc)
    url = f"http://127.0.0.1:{port}/"
    wait_dashboard(url, 30, proc)
    return url


def _wait_supervisor(run: RunDir, supervisor, timeout: float) -> None:
    """Until the supervisor says every instance started (its ready file), or it exits."""
    marker = run.ready / SUPERVISOR
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if supervisor.poll() is not None:
            raise RuntimeError(f"the supervisor exited with {supervisor.returncode}:\n"
                               f"{tail(run.logs / f'{SUPERVISOR}.log', 60)}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"services not ready after {timeout:.0f}s:\n"
                               f"{tail(run.logs / f'{SUPERVISOR}.log', 60)}")
        time.sleep(0.1)


def _stop_all(run: RunDir, quiet: bool = False) -> bool:
    pids = read_pids(run)
    if SUPERVISOR in pids:
        # it stops its services itself (each has up to 10 s to finish its batch)
        _stop_pid(SUPERVISOR, pids.pop(SUPERVISOR), timeout=30)
        if not quiet:
            print(f"stopped {SUPERVISOR}")
        pids = {n: e for n, e in read_pids(run).items() if n != SUPERVISOR}  # it may have rewritten some
    for name in sorted(pids, key=_order):
        _stop_pid(name, pids[name])
        if not quiet:
            print(f"stopped {name}")
    return bool(pids)


def down(run: RunDir = DEFAULT_RUN) -> int:
    if not read_pids(run):
        print("nothing running")
    _stop_all(run)
    _clean(run)
    return 0


def status(run: RunDir = DEFAULT_RUN) -> int:
    pids = read_pids(run)
    if not pids:
        print("stack is down")
        return 3
    ok = True
    for name in sorted(pids, key=lambda n: (_order(n), n)):
        entry = pids[name]
        alive = is_ours(entry)
        ok &= alive
        state = ""
        if _order(name) == 1:
            ready = run.ready / name
            state = f" {ready.read_text().strip() or 'ready'}" if ready.exists() else (
                " standby" if alive else "")
            state += f" (restarts {entry.get('restarts', 0)})"
        print(f"{name:14} pid {entry.get('pid')!s:8} {'running' if alive else 'DEAD'}{state}")
    if run.stack_env.exists():
        print(run.stack_env.read_text(), end="")
    return 0 if ok else 1


def _clean(run: RunDir) -> None:
    for path in [*run.pids.glob("*.pid"), *run.ready.glob("*"), run.stack_env, run.plan]:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("STACK_READY_TIMEOUT", 90)),
                        help="seconds to wait for every service to be ready (default 90)")
    parser.add_argument("--standby", action="store_true",
                        help=f"run a second instance of each service ({', '.join(instance_names('intake', True))}, ...)")
    parser.add_argument("--intake-shards", type=int, default=1,
                        help="run intake in this many shards (intake, intake-s1, ...; shared/shards.py)")
    parser.add_argument("--enforcement-shards", type=int, default=1,
                        help="run enforcement in this many shards (enforcement, enforcement-s1, ...)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN.root,
                        help="where pids/, logs/, ready/ and stack.env live (default .run/)")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir.resolve())
    if args.command == "up":
        return up(args.timeout, args.standby, run, args.intake_shards, args.enforcement_shards)
    return down(run) if args.command == "down" else status(run)


if __name__ == "__main__":
    sys.exit(main())
