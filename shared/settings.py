"""Settings from the environment, one place for every service."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date

from shared.topics import PERSONAL_DATA_RETENTION_DAYS


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _retention(text: str) -> int:
    days = int(text)
    if days <= 14:
        raise SystemExit(f"PERSONAL_DATA_RETENTION_DAYS={days}: must be more than 14, the request window")
    return days


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    signing_keys_file: str | None = None
    ready_file: str | None = None
    # records per batch: one commit script, one relay and one offset commit each. Larger
    # batches cost less CPU per event and more memory at the peak (a batch's records, its
    # outputs and their encodings are alive at once). On the full replay (the bench, one
    # 2-core machine, same day): 2000 took 380 us of CPU per event end to end and matching
    # peaked at 170-176 MB, enforcement at 145-151; 1000 took 396 us and they peaked at 145
    # and 136 (every service under 150 MB); 500 used about 8% more CPU than 2000.
    max_batch: int = 1000
    # How long the subscriber waits for records before it reports an empty batch. FastStream's
    # batch subscriber then SLEEPS as long again, and records that arrive meanwhile wait: at
    # 50 ms that sleep was most of a hop's p95 (50-70 ms per hop at 200 arrivals/s). 5 ms
    # bounds it at 5 ms for about 100 idle wake-ups a second (no broker request each).
    batch_timeout_ms: int = 5
    # How long the broker may hold a fetch when there is nothing to read. aiokafka's default
    # of 500 ms sits on every hop when traffic is light on a broker that does not answer a
    # waiting fetch as soon as records arrive (Tansu looks again only now and then until the
    # wait is over): 10 ms keeps a hop's wait small at the price of idle polling. On the bench,
    # back to back, 10 instead of 20 took the first Decision after the replay from p50 34 / p99
    # 51 ms to 31 / 47, for the broker 19 % of a core idle instead of 16 and intake 7 instead of
    # 5 (its fetch names 28 partitions); the replay unchanged. Against a broker that answers a
    # waiting fetch at once, raise it.
    fetch_max_wait_ms: int = 10
    # The same two for a prompt service (`Service.prompt`: enforcement and matching, the hops
    # between an arrival and its first Decision). On the bench, back to back at 200 arrivals/s,
    # 5 ms and 2 ms there took the first Decision from p50 38 / p99 56-67 ms to 32 / 47-59, the
    # replay's CPU per event unchanged within its spread, for 8-11 % of a core idle in each of
    # the two instead of 6-7. The same for every service cost the replay a tenth more CPU
    # (transfer and intake catch up often and would poll five times as often); intake's fetch
    # names 28 partitions, and a 5 ms hold there costs the broker about 23 % of a core idle.
    prompt_fetch_max_wait_ms: int = 5
    prompt_batch_timeout_ms: int = 2
    # The most one fetch may bring. Tansu gives the first partition of a request all of it, and
    # aiokafka's default is 50 MiB: a backlog came in as one reply of tens of megabytes, held
    # in the consumer until read. 1 MiB is aiokafka's (and Kafka's) per-partition default.
    fetch_max_bytes: int = 1024 * 1024
    # the relay's producer: how long it gathers records into one request, and its batch size.
    # aiokafka puts at most one batch per partition in a request, and Tansu spends ~200 us
    # of CPU per produce request whatever its size: 16 KiB batches cut a 2,000-record batch
    # into ~10 requests in a row. 512 KiB (under the brokers' 1 MiB message.max.bytes) made
    # the broker's CPU per replayed event 178 -> 106 us and every service cheaper (the bench).
    linger_ms: int = 0
    max_produce_batch_bytes: int = 512 * 1024
    session_timeout_ms: int = 10000
    # glibc's malloc (shared/heap.py; 0 leaves glibc's own behaviour). A fixed 128 KiB mmap
    # threshold gives the relay's 512 KiB batches and other large buffers back when they are
    # freed: at the end of a 40,000-arrival replay intake held 99 MB instead of 108-112 and
    # matching 123 instead of 136, peaks and CPU per event unchanged within the runs' spread;
    # restoring the full history, enforcement peaked at 247 MB instead of 258 and matching at
    # 215 instead of 221. The arena count changed nothing (a service runs two threads); fixing
    # the mmap threshold fixes the trim threshold at glibc's 128 KiB as well.
    heap_mmap_threshold_bytes: int = 128 * 1024
    heap_arena_max: int = 0
    heap_trim_threshold_bytes: int = 0
    # one fenced writer per service: the instance's name, its lease, its health endpoint
    instance: str | None = None
    # intake and enforcement in shards (shared/shards.py): how many of each, and which one this
    # instance runs (SERVICE_SHARD; else a StatefulSet pod's POD_INDEX modulo the count, so pods
    # k and k+N are shard k's active and standby). The services on either side of a topic must
    # be given the same counts, and the topics as many partitions (deploy/create_topics.py
    # reads them too).
    intake_shards: int = 1
    enforcement_shards: int = 1
    shard: int | None = None
    pod_index: int | None = None
    lease_ttl_ms: int = 5000
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    stop_grace_s: float = 8.0
    # the duplicate filter remembers event ids this long (event time); beyond it the offsets
    # and the state keep effects idempotent. Longer than the longest clock (the 90-day hold).
    dedupe_horizon_days: int = 120
    # records per committed chunk of a catch-up replay: small enough that the lease keeper
    # runs between chunks even for matching's heaviest records
    replay_chunk: int = 500
    # A service that merges its input partitions in event-time order (intake, shared/merge.py)
    # fetches at most this much at a time: Tansu gives the first partition of a fetch request
    # all of the request's bytes (aiokafka's default is 50 MiB: one partition's whole backlog),
    # and the merge needs a little of every partition, not a lot of one. It pauses a partition
    # that holds about two fetches' worth, so the next fetches go to the others.
    merge_fetch_bytes: int = 256 * 1024
    # names and dates of birth are kept this long after landing (transfer's particulars)
    personal_data_retention_days: int = PERSONAL_DATA_RETENTION_DAYS
    # scheme rules
    rule_version: str = "oioo-rules-1.0"
    default_cap: int = 50
    priority_nationalities: tuple[str, ...] = ("ERI", "AFG", "SDN")
    # Scheme dates, as London calendar dates: arrivals that landed before the start are not
    # returnable; no pair forms once now's London date is after the end.
    scheme_start: date = date(2025, 8, 6)
    scheme_end: date = date(2026, 6, 11)
    imbalance_margin: int = 10
    # "A return request must reach France within 14 days of the person landing."
    request_window_days: int = 14
    # "production" turns on shared.security.check_production: no development keys, TLS and
    # SASL required. Anything else is development.
    oioo_env: str = "development"
    # Kafka transport security (aiokafka names): PLAINTEXT for the embedded dev stack,
    # SASL_SSL with SCRAM in production. The password comes inline or, better, from a file.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: str | None = field(default=None, repr=False)
    kafka_password_file: str | None = None
    kafka_ca_file: str | None = None
    # Redis: a rediss:// REDIS_URL turns on TLS; the password (and ACL user) may come apart
    # from the URL so the URL can be logged.
    redis_username: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_password_file: str | None = None
    redis_ca_file: str | None = None
    # Sentinels (host:port, ...): when set, the services ask them which server is the primary of
    # REDIS_SENTINEL_MASTER, and ask again after a failover; REDIS_URL then gives only the
    # database, the login and TLS (shared/redis_client.py).
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = "oioo"

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        prio = _env("PRIORITY_NATIONALITIES", ",".join(d.priority_nationalities))
        return cls(
            kafka_bootstrap_servers=_env("KAFKA_BOOTSTRAP_SERVERS", d.kafka_bootstrap_servers),
            redis_url=_env("REDIS_URL", d.redis_url),
            signing_keys_file=os.environ.get("SIGNING_KEYS_FILE") or None,
            ready_file=os.environ.get("SERVICE_READY_FILE") or None,
            max_batch=int(_env("MAX_BATCH", str(d.max_batch))),
            batch_timeout_ms=int(_env("BATCH_TIMEOUT_MS", str(d.batch_timeout_ms))),
            fetch_max_wait_ms=int(_env("FETCH_MAX_WAIT_MS", str(d.fetch_max_wait_ms))),
            prompt_fetch_max_wait_ms=int(_env("PROMPT_FETCH_MAX_WAIT_MS", str(d.prompt_fetch_max_wait_ms))),
            prompt_batch_timeout_ms=int(_env("PROMPT_BATCH_TIMEOUT_MS", str(d.prompt_batch_timeout_ms))),
            fetch_max_bytes=int(_env("FETCH_MAX_BYTES", str(d.fetch_max_bytes))),
            linger_ms=int(_env("PRODUCER_LINGER_MS", str(d.linger_ms))),
            max_produce_batch_bytes=int(_env("PRODUCER_MAX_BATCH_BYTES", str(d.max_produce_batch_bytes))),
            instance=os.environ.get("SERVICE_INSTANCE") or None,
            intake_shards=int(_env("INTAKE_SHARDS", str(d.intake_shards))),
            enforcement_shards=int(_env("ENFORCEMENT_SHARDS", str(d.enforcement_shards))),
            shard=int(os.environ["SERVICE_SHARD"]) if os.environ.get("SERVICE_SHARD") else None,
            pod_index=int(os.environ["POD_INDEX"]) if os.environ.get("POD_INDEX") else None,
            lease_ttl_ms=int(_env("LEASE_TTL_MS", str(d.lease_ttl_ms))),
            health_host=_env("HEALTH_HOST", d.health_host),
            health_port=int(os.environ["HEALTH_PORT"]) if os.environ.get("HEALTH_PORT") else None,
            stop_grace_s=float(_env("STOP_GRACE_S", str(d.stop_grace_s))),
            dedupe_horizon_days=int(_env("DEDUPE_HORIZON_DAYS", str(d.dedupe_horizon_days))),
            replay_chunk=int(_env("REPLAY_CHUNK", str(d.replay_chunk))),
            merge_fetch_bytes=int(_env("MERGE_FETCH_BYTES", str(d.merge_fetch_bytes))),
            personal_data_retention_days=_retention(_env("PERSONAL_DATA_RETENTION_DAYS",
                                                         str(d.personal_data_retention_days))),
            session_timeout_ms=int(_env("KAFKA_SESSION_TIMEOUT_MS", str(d.session_timeout_ms))),
            heap_mmap_threshold_bytes=int(_env("HEAP_MMAP_THRESHOLD_BYTES", str(d.heap_mmap_threshold_bytes))),
            heap_arena_max=int(_env("HEAP_ARENA_MAX", str(d.heap_arena_max))),
            heap_trim_threshold_bytes=int(_env("HEAP_TRIM_THRESHOLD_BYTES", str(d.heap_trim_threshold_bytes))),
            rule_version=_env("RULE_VERSION", d.rule_version),
            default_cap=int(_env("DEFAULT_WEEKLY_CAP", str(d.default_cap))),
            priority_nationalities=tuple(p.strip().upper() for p in prio.split(",") if p.strip()),
            scheme_start=date.fromisoformat(_env("SCHEME_START", d.scheme_start.isoformat())),
            scheme_end=date.fromisoformat(_env("SCHEME_END", d.scheme_end.isoformat())),
            imbalance_margin=int(_env("IMBALANCE_MARGIN", str(d.imbalance_margin))),
            request_window_days=int(_env("REQUEST_WINDOW_DAYS", str(d.request_window_days))),
            oioo_env=_env("OIOO_ENV", d.oioo_env).strip().lower(),
            kafka_security_protocol=_env("KAFKA_SECURITY_PROTOCOL", d.kafka_security_protocol).upper(),
            kafka_sasl_mechanism=_env("KAFKA_SASL_MECHANISM", d.kafka_sasl_mechanism).upper(),
            kafka_username=os.environ.get("KAFKA_USERNAME") or None,
            kafka_password=os.environ.get("KAFKA_PASSWORD") or None,
            kafka_password_file=os.environ.get("KAFKA_PASSWORD_FILE") or None,
            kafka_ca_file=os.environ.get("KAFKA_CA_FILE") or None,
            redis_username=os.environ.get("REDIS_USERNAME") or None,
            redis_password=os.environ.get("REDIS_PASSWORD") or None,
            redis_password_file=os.environ.get("REDIS_PASSWORD_FILE") or None,
            redis_ca_file=os.environ.get("REDIS_CA_FILE") or None,
            redis_sentinels=tuple(a.strip() for a in os.environ.get("REDIS_SENTINELS", "").split(",") if a.strip()),
            redis_sentinel_master=_env("REDIS_SENTINEL_MASTER", d.redis_sentinel_master),
        )
