"""The owner of the services of a detached stack: `python -m deploy.supervise --run-dir .run`.

Why: `make up` returns to the shell, so someone must outlive it to restart a service that dies,
as compose's `restart: unless-stopped` does in production. `deploy.stack up` starts the broker
and Redis, writes the plan (`<run-dir>/supervise.json`: addresses, services, standby, health
ports) and starts this process detached. It starts every instance, touches
`<run-dir>/ready/supervise` once the first instance of each service is ready and the standbys
are alive, then polls every 0.2 s and restarts any instance that exits (its log appended, its
`pids/<instance>.pid` rewritten with the restart count). SIGTERM (`make down`) stops every
instance (SIGTERM, up to 10 s each, all at once) and then exits. If the services cannot start,
it stops what it started and exits 1 with the reason in its log.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from deploy.embedded import SUPERVISE_POLL, EmbeddedStack, ServiceProcess
from deploy.stack import SUPERVISOR, RunDir, write_pid

log = logging.getLogger("supervise")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run = RunDir(args.run_dir.resolve())
    plan = json.loads(run.plan.read_text())

    stack: EmbeddedStack | None = None

    def record(svc: ServiceProcess) -> None:
        write_pid(run, svc.name, svc.process, restarts=stack.restarts[svc.name] if stack else 0)

    stack = EmbeddedStack.attach(run.root, plan["bootstrap"], plan["redis_url"], services=plan["services"],
                                 keys_file=Path(plan["keys_file"]), standby=plan["standby"],
                                 intake_shards=plan.get("intake_shards", 1),
                                 enforcement_shards=plan.get("enforcement_shards", 1),
                                 detach=True, supervise=False, on_spawn=record)
    stack.plan_instances(plan["health_ports"])

    halt = threading.Event()
    supervising = False

    def on_signal(signum, _frame) -> None:
        if not supervising:  # still starting: abandon the start (the finally clause cleans up)
            raise SystemExit(128 + signum)
        halt.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    marker = run.ready / SUPERVISOR
    try:
        stack.start_services(plan.get("timeout"))
        supervising = True
        marker.write_text("up\n")
        log.info("supervising %s", ", ".join(stack.instances))
        while not halt.wait(SUPERVISE_POLL):
            stack.supervise_once()
        log.info("stopping %s", ", ".join(stack.services))
        return 0
    except Exception as exc:  # noqa: BLE001 - reported to `deploy.stack up` through our log
        log.error("the services did not start: %s", exc)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time
        stack.stop_services()
        marker.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
