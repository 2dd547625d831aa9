"""Transport security from the settings, and the production start check.

- `broker_security(settings)`: the `security=` object for FastStream's `KafkaBroker`.
- `kafka_client_options(settings)`: the same as keyword options for plain aiokafka clients
  (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient).
- `redis_options(settings)`: keyword options for `Redis.from_url(settings.redis_url, ...)`.
- `check_production(settings)`: with OIOO_ENV=production, refuses to start (SystemExit, naming
  every setting that is wrong and never a secret) on the development keyring, a signing secret
  under 32 bytes, Kafka without SASL/SCRAM over TLS, or Redis without a password or TLS.

Development (the embedded Tansu stack) is PLAINTEXT with no users: every function here then
returns "nothing to add", so the dev and test paths stay as they are.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import Settings
from shared.signing import read_keys
from shared.signing import production_problems

PRODUCTION = "production"
SCRAM = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _file_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def kafka_password(settings: Settings) -> str | None:
    if settings.kafka_password_file:
        return _file_text(settings.kafka_password_file)
    return settings.kafka_password


def redis_password(settings: Settings) -> str | None:
    if settings.redis_password_file:
        return _file_text(settings.redis_password_file)
    return settings.redis_password


def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def broker_security(settings: Settings) -> BaseSecurity | None:
    """FastStream's security object for `KafkaBroker(..., security=...)`; None for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    if protocol == "PLAINTEXT":
        return None
    tls = protocol in ("SSL", "SASL_SSL")
    ctx = _ssl_context(settings.kafka_ca_file) if tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ctx, use_ssl=True)
    if not settings.kafka_username:
        raise ValueError("KAFKA_USERNAME is not set but KAFKA_SECURITY_PROTOCOL asks for SASL")
    password = kafka_password(settings) or ""
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "PLAIN":
        return SASLPlaintext(settings.kafka_username, password, ssl_context=ctx, use_ssl=tls)
    if mechanism not in SCRAM:
        raise ValueError("KAFKA_SASL_MECHANISM must be SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
    return SCRAM[mechanism](settings.kafka_username, password, ssl_context=ctx, use_ssl=tls)


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Keyword options for aiokafka clients, equal to what `broker_security` gives FastStream."""
    security = broker_security(settings)
    if security is None:
        return {"security_protocol": "PLAINTEXT"}
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol,
                               "ssl_context": security.ssl_context}
    if isinstance(security, (SASLPlaintext, SASLScram256, SASLScram512)):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=security.username, sasl_plain_password=security.password)
    return options


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword options for `Redis.from_url(settings.redis_url, **redis_options(settings))`."""
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    password = redis_password(settings)
    if password:
        options["password"] = password
    if urlsplit(settings.redis_url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required"
        if settings.redis_ca_file:
            options["ssl_ca_certs"] = settings.redis_ca_file
    return options


# ---- the production start check ------------------------------------------------------------

def _readable(path: str, setting: str) -> list[str]:
    try:
        if not _file_text(path):
            return [f"{setting} names an empty file ({path})"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{setting} names a file that cannot be read ({path}: {exc.__class__.__name__})"]
    return []


def _kafka_problems(s: Settings) -> list[str]:
    problems = []
    if s.kafka_security_protocol != "SASL_SSL":
        problems.append(f"KAFKA_SECURITY_PROTOCOL is {s.kafka_security_protocol or 'unset'}: "
                        "production needs SASL_SSL (SASL/SCRAM over TLS)")
    if s.kafka_sasl_mechanism not in SCRAM:
        problems.append(f"KAFKA_SASL_MECHANISM is {s.kafka_sasl_mechanism or 'unset'}: "
                        "production needs SCRAM-SHA-512 (or SCRAM-SHA-256)")
    if not s.kafka_username:
        problems.append("KAFKA_USERNAME is not set: every service has its own Kafka user")
    if s.kafka_password_file:
        problems += _readable(s.kafka_password_file, "KAFKA_PASSWORD_FILE")
    elif not s.kafka_password:
        problems.append("no Kafka password: set KAFKA_PASSWORD_FILE (or KAFKA_PASSWORD)")
    if not s.kafka_ca_file:
        problems.append("KAFKA_CA_FILE is not set: the broker's TLS certificate cannot be verified")
    else:
        problems += _readable(s.kafka_ca_file, "KAFKA_CA_FILE") or _loads_as_ca(s.kafka_ca_file, "KAFKA_CA_FILE")
    return problems


def _loads_as_ca(path: str, setting: str) -> list[str]:
    try:
        _ssl_context(path)
    except ssl.SSLError:
        return [f"{setting} ({path}) holds no PEM certificate"]
    return []


def _redis_problems(s: Settings) -> list[str]:
    problems = []
    url = urlsplit(s.redis_url)
    # Never echo the URL: it may carry the password.
    if url.scheme != "rediss":
        problems.append(f"REDIS_URL uses {url.scheme or 'no'} scheme: production needs TLS (rediss://)")
    if s.redis_password_file:
        problems += _readable(s.redis_password_file, "REDIS_PASSWORD_FILE")
    elif not (s.redis_password or url.password):
        problems.append("Redis has no password: set REDIS_PASSWORD_FILE (or REDIS_PASSWORD)")
    if s.redis_ca_file:
        problems += _readable(s.redis_ca_file, "REDIS_CA_FILE") or _loads_as_ca(s.redis_ca_file, "REDIS_CA_FILE")
    return problems


def _keyring_problems(s: Settings) -> list[str]:
    if not s.signing_keys_file:
        return []  # only intake verifies signatures; it refuses to start without a keyring
    try:
        keys = read_keys(Path(s.signing_keys_file))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [f"SIGNING_KEYS_FILE {s.signing_keys_file} does not load ({exc.__class__.__name__})"]
    return [f"SIGNING_KEYS_FILE {s.signing_keys_file}: {p}" for p in production_problems(keys)]


def production_problems_of(settings: Settings, *, redis: bool = True) -> list[str]:
    """Everything that stops these settings from running in production (empty when fine).
    redis=False for a Kafka-only process (the topic creation job)."""
    problems = _keyring_problems(settings) + _kafka_problems(settings)
    return problems + (_redis_problems(settings) if redis else [])


def check_production(settings: Settings, *, redis: bool = True) -> None:
    """With OIOO_ENV=production, refuse to start on anything `production_problems_of` finds."""
    if settings.oioo_env != PRODUCTION:
        return
    problems = production_problems_of(settings, redis=redis)
    if problems:
        raise SystemExit("refusing to start with OIOO_ENV=production:\n"
                         + "\n".join(f"  - {p}" for p in problems))
