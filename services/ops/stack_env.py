"""Where the running system is: `.run/stack.env` (written by `make up`) or the environment."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENV_FILE = Path(".run/stack.env")
REPO_ENV_FILE = Path(__file__).resolve().parents[2] / ".run" / "stack.env"  # when run from elsewhere
KEYS = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "SIGNING_KEYS_FILE", "HEALTH_URLS", "DASHBOARD_URL",
        "INTAKE_SHARDS", "ENFORCEMENT_SHARDS")


class NoStack(RuntimeError):
    """No way to reach the system: no env file and no KAFKA_BOOTSTRAP_SERVERS."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; surrounding quotes dropped."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def load(path: str | os.PathLike | None = None) -> dict[str, str]:
    """The stack's settings: the process environment, overridden by the env file.

    An explicit `path` must exist; the default `.run/stack.env` may be missing, and then the
    environment alone must name the broker."""
    env = {k: os.environ[k] for k in KEYS if os.environ.get(k)}
    file = Path(path) if path is not None else DEFAULT_ENV_FILE
    if path is None and not file.exists():
        file = REPO_ENV_FILE
    if file.exists():
        env.update(read_env_file(file))
    elif path is not None:
        raise NoStack(f"{file} does not exist")
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise NoStack(f"no {DEFAULT_ENV_FILE} (run `make up`) and KAFKA_BOOTSTRAP_SERVERS is not set")
    return env


def health_urls(env: dict[str, str]) -> dict[str, str]:
    """HEALTH_URLS="intake=http://127.0.0.1:9101/healthz,matching=..." as {instance: base url}
    (the health port's root: /healthz, /readyz and /metrics are beside each other)."""
    out: dict[str, str] = {}
    for part in (env.get("HEALTH_URLS") or "").split(","):
        name, sep, url = part.strip().partition("=")
        if sep and name.strip() and url.strip():
            out[name.strip()] = url.strip().rstrip("/").removesuffix("/healthz")
    return out
