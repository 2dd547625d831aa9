"""The service's Redis client: the server at REDIS_URL, or the primary the Sentinels name.

With REDIS_SENTINELS set, the client asks the Sentinels which server is REDIS_SENTINEL_MASTER's
primary when it connects, and again whenever a connection fails or the server it reached is no
longer the primary (a failover: Sentinel promotes the replica and disconnects the clients of the
old primary, which then refuses writes). To the runtime that is an outage like any other:
`until_done` retries, and the retry reaches the new primary. REDIS_URL still gives the
database, the login and TLS (rediss://); its host and port are not used. The Sentinels take the
same password and TLS as Redis.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel

from shared.security import redis_options
from shared.settings import Settings


def connect(settings: Settings, *, socket_timeout: float = 5.0, socket_connect_timeout: float = 3.0) -> Redis:
    options: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout,
                               **redis_options(settings)}
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **options)
    from_url = parse_url(settings.redis_url)
    connection = {k: from_url[k] for k in ("db", "username", "password") if from_url.get(k) is not None}
    connection.update(options)
    if urlsplit(settings.redis_url).scheme == "rediss":
        connection["ssl"] = True
    own = {k: connection[k] for k in ("password", "socket_timeout", "socket_connect_timeout", "ssl",
                                      "ssl_cert_reqs", "ssl_ca_certs") if k in connection}
    sentinel = Sentinel(sentinel_addresses(settings.redis_sentinels), sentinel_kwargs=own, **connection)
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=Redis)


def sentinel_addresses(sentinels: tuple[str, ...]) -> list[tuple[str, int]]:
    """"host:port" each ("[::1]:26379" for an IPv6 address); a bad one is refused by name."""
    out = []
    for address in sentinels:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {address!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out
