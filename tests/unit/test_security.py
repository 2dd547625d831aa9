"""shared.security: transport options from the settings, and the production start check."""
from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream.kafka.security import parse_security
from faststream.security import SASLScram256, SASLScram512
from redis.asyncio import Redis

from shared.security import broker_security, check_production, kafka_client_options, redis_options
from shared.settings import Settings
from shared.signing import DEV_KEYRING, MIN_SECRET_BYTES

DEV_SECRETS = [e["secret"] for e in json.loads(DEV_KEYRING.read_text()).values()]
GOOD_SECRET = "k" * MIN_SECRET_BYTES


def _keyring(path: Path, **secrets: str) -> str:
    path.write_text(json.dumps({k: {"secret": s, "topics": ["border.arrivals.v1"]} for k, s in secrets.items()}))
    return str(path)


@pytest.fixture(scope="module")
def ca_cert(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "2",
                    "-subj", "/CN=test CA"], check=True, capture_output=True)
    return d / "ca.crt"


@pytest.fixture
def production(tmp_path, ca_cert) -> Settings:
    """Settings that pass the check: every test breaks exactly one thing."""
    shutil.copy(ca_cert, tmp_path / "ca.crt")
    (tmp_path / "not-a-cert.crt").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    (tmp_path / "kafka.pw").write_text("kafka-password-from-a-file\n")
    (tmp_path / "redis.pw").write_text("redis-password-from-a-file\n")
    return Settings(
        oioo_env="production",
        signing_keys_file=_keyring(tmp_path / "keys.json", terminals=GOOD_SECRET),
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username="intake", kafka_password_file=str(tmp_path / "kafka.pw"),
        kafka_ca_file=str(tmp_path / "ca.crt"),
        redis_url="rediss://redis:6379/0", redis_username="intake",
        redis_password_file=str(tmp_path / "redis.pw"), redis_ca_file=str(tmp_path / "ca.crt"),
    )


def _refusal(settings: Settings) -> str:
    with pytest.raises(SystemExit) as exc:
        check_production(settings)
    message = exc.value.code
    assert isinstance(message, str) and message.startswith("refusing to start with OIOO_ENV=production")
    return message


def test_good_production_settings_pass(production):
    check_production(production)


def test_development_is_not_checked():
    check_production(Settings(signing_keys_file=str(DEV_KEYRING)))


def test_the_development_keyring_is_refused_and_named_without_its_secrets(production):
    message = _refusal(replace(production, signing_keys_file=str(DEV_KEYRING)))
    assert "development keys" in message and "border-force-terminals" in message
    assert not any(secret in message for secret in DEV_SECRETS)


def test_development_secrets_are_recognised_by_content_wherever_the_file_is(production, tmp_path):
    copied = tmp_path / "prod-keys.json"
    entry = json.loads(DEV_KEYRING.read_text())["immigration-enforcement"]  # 34 bytes: long enough
    assert len(entry["secret"]) >= MIN_SECRET_BYTES
    copied.write_text(json.dumps({"ie-2026": entry, "terminals": {"secret": GOOD_SECRET, "topics": []}}))
    message = _refusal(replace(production, signing_keys_file=str(copied)))
    assert "development keys" in message and "ie-2026" in message and "terminals" not in message
    assert entry["secret"] not in message


def test_a_short_signing_secret_is_refused_by_key_id(production, tmp_path):
    short = "s" * (MIN_SECRET_BYTES - 1)
    path = _keyring(tmp_path / "short.json", portal=short, terminals=GOOD_SECRET)
    message = _refusal(replace(production, signing_keys_file=path))
    assert f"shorter than {MIN_SECRET_BYTES} bytes under key ids portal" in message
    assert short not in message and "terminals" not in message


def test_an_unreadable_keyring_is_refused(production, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    assert "does not load" in _refusal(replace(production, signing_keys_file=str(tmp_path / "broken.json")))


@pytest.mark.parametrize("change, named", [
    ({"kafka_security_protocol": "PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
    ({"kafka_ca_file": None}, "KAFKA_CA_FILE is not set"),
    ({"kafka_ca_file": "/nonexistent/ca.crt"}, "KAFKA_CA_FILE names a file that cannot be read"),
    ({"kafka_ca_file": "NOT_A_CERT"}, "holds no PEM certificate"),
    ({"kafka_sasl_mechanism": "PLAIN"}, "KAFKA_SASL_MECHANISM is PLAIN"),
    ({"kafka_username": None}, "KAFKA_USERNAME is not set"),
    ({"kafka_password_file": None}, "no Kafka password"),
    ({"redis_url": "redis://redis:6379/0"}, "production needs TLS (rediss://)"),
    ({"redis_password_file": None}, "Redis has no password"),
])
def test_missing_tls_sasl_or_redis_password_is_refused(production, change, named):
    if change.get("kafka_ca_file") == "NOT_A_CERT":
        change = {"kafka_ca_file": str(Path(production.kafka_ca_file).with_name("not-a-cert.crt"))}
    message = _refusal(replace(production, **change))
    assert named in message
    assert message.count("\n  - ") == 1, message  # exactly the one thing that was broken


def test_the_check_never_echoes_a_password(production):
    message = _refusal(replace(production, redis_url="redis://intake:hunter2-redis@redis:6379/0",
                               kafka_password="hunter2-kafka", kafka_password_file=None, kafka_ca_file=None))
    assert "hunter2" not in message and "KAFKA_CA_FILE" in message


def test_an_empty_password_file_is_refused(production, tmp_path):
    (tmp_path / "empty").write_text("\n")
    assert "KAFKA_PASSWORD_FILE names an empty file" in _refusal(
        replace(production, kafka_password_file=str(tmp_path / "empty")))


def test_settings_from_env_read_the_security_options(monkeypatch, tmp_path):
    for k, v in {"OIOO_ENV": "Production", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                 "KAFKA_SASL_MECHANISM": "scram-sha-256", "KAFKA_USERNAME": "matching",
                 "KAFKA_PASSWORD_FILE": "/run/secrets/k", "KAFKA_CA_FILE": "/run/secrets/ca",
                 "REDIS_USERNAME": "matching", "REDIS_PASSWORD": "pw", "REDIS_CA_FILE": "/ca"}.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert (s.oioo_env, s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("production", "SASL_SSL", "SCRAM-SHA-256")
    assert (s.kafka_username, s.kafka_password_file, s.kafka_ca_file) == ("matching", "/run/secrets/k", "/run/secrets/ca")
    assert (s.redis_username, s.redis_password, s.redis_ca_file) == ("matching", "pw", "/ca")
    assert "pw" not in repr(replace(s, kafka_password="pw-kafka")).replace("password_file", "")


# ---- transport options -----------------------------------------------------------------------

def test_plaintext_development_adds_nothing():
    s = Settings()
    assert broker_security(s) is None
    assert kafka_client_options(s) == {"security_protocol": "PLAINTEXT"}
    assert redis_options(s) == {}


def test_scram_over_tls_for_faststream_and_aiokafka_alike(production):
    security = broker_security(production)
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password, security.use_ssl) == ("intake", "kafka-password-from-a-file", True)
    ctx = security.ssl_context
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    options = kafka_client_options(production)
    faststream_gives = parse_security(security)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == \
        {k: v for k, v in faststream_gives.items() if k != "ssl_context"}
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert isinstance(broker_security(replace(production, kafka_sasl_mechanism="SCRAM-SHA-256")), SASLScram256)


async def test_aiokafka_clients_accept_the_options(production):
    # constructing validates protocol, mechanism and credentials; nothing connects
    options = kafka_client_options(production)
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **options)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **options)
    assert consumer._client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    await producer.stop()


def test_unknown_protocol_is_an_error(production):
    with pytest.raises(ValueError, match="KAFKA_SECURITY_PROTOCOL"):
        broker_security(replace(production, kafka_security_protocol="SASL_TLS"))


async def test_redis_gets_its_user_password_and_ca(production):
    options = redis_options(production)
    assert options == {"username": "intake", "password": "redis-password-from-a-file",
                       "ssl_cert_reqs": "required", "ssl_ca_certs": production.redis_ca_file}
    client = Redis.from_url(production.redis_url, **options)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "redis-password-from-a-file" and kwargs["ssl_ca_certs"] == production.redis_ca_file
    await client.aclose()
    plain = redis_options(replace(production, redis_url="redis://redis:6379/0"))
    assert "ssl_ca_certs" not in plain  # a plain connection would reject TLS options
