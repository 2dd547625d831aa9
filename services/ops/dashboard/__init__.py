"""The live ops dashboard: one page fed by server-sent events from the ops topics.

Run it with `python -m services.ops.dashboard` (env KAFKA_BOOTSTRAP_SERVERS, DASHBOARD_PORT,
optional REDIS_URL, HEALTH_URLS, DASHBOARD_HOST). `start_dashboard` starts it as a child
process for the dev stack and the tests; its URL is `http://127.0.0.1:<port>/`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def dashboard_url(port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/"


def start_dashboard(env: Mapping[str, str], port: int, log_path: str | os.PathLike | None,
                    *, detach: bool = False) -> subprocess.Popen:
    """Start the dashboard for the stack described by `env` (the keys of .run/stack.env) on
    127.0.0.1:`port`; its output goes to `log_path`. The caller owns (and stops) the process."""
    child_env = {**os.environ, **env, "DASHBOARD_PORT": str(port)}
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "services.ops.dashboard"], cwd=REPO_ROOT, env=child_env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=detach)
    finally:
        if log_path is not None:
            out.close()


def wait_dashboard(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Until the page answers /healthz; raises if it does not in time or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=1) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the dashboard at {url} did not answer within {timeout:.0f}s")
