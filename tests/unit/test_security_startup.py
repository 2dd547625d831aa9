"""A service started with OIOO_ENV=production refuses the development keyring and missing TLS.

Real processes (`python -m services.<name>`), as compose starts them; they must exit before
touching the network, so no broker is needed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.signing import DEV_KEYRING

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRETS = [e["secret"] for e in json.loads(DEV_KEYRING.read_text()).values()]


def start(service: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("KAFKA_", "REDIS_", "SIGNING_", "OIOO_", "SERVICE_"))}
    # nothing listens there: a service that got past the check would fail differently, later
    clean.update({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "REDIS_URL": "redis://127.0.0.1:9/0"})
    clean.update(env)
    return subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def transport(tmp_path) -> dict[str, str]:
    """Every transport setting present, so the keyring is the only thing wrong."""
    ca = tmp_path / "ca.crt"
    proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca), "-days", "2",
                           "-subj", "/CN=test CA"], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("openssl could not make a test CA")
    (tmp_path / "pw").write_text("p" * 40)
    return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_USERNAME": "intake", "KAFKA_PASSWORD_FILE": str(tmp_path / "pw"),
            "KAFKA_CA_FILE": str(ca), "REDIS_URL": "rediss://127.0.0.1:9/0", "REDIS_PASSWORD_FILE": str(tmp_path / "pw")}


def test_intake_in_production_with_the_development_keyring_exits_and_says_why(transport):
    proc = start("intake", OIOO_ENV="production", SIGNING_KEYS_FILE=str(DEV_KEYRING), **transport)
    assert proc.returncode != 0
    assert "refusing to start with OIOO_ENV=production" in proc.stderr
    assert "development keys" in proc.stderr and str(DEV_KEYRING) in proc.stderr
    assert "KAFKA_" not in proc.stderr and "Redis" not in proc.stderr  # only what is wrong
    assert not any(secret in proc.stderr + proc.stdout for secret in DEV_SECRETS)
    assert "Traceback" not in proc.stderr


def test_intake_in_production_without_tls_names_each_missing_setting():
    proc = start("intake", OIOO_ENV="production", SIGNING_KEYS_FILE=str(DEV_KEYRING))
    assert proc.returncode != 0
    for named in ("development keys", "KAFKA_SECURITY_PROTOCOL is PLAINTEXT", "KAFKA_CA_FILE is not set",
                  "KAFKA_USERNAME is not set", "production needs TLS (rediss://)", "Redis has no password"):
        assert named in proc.stderr, named


@pytest.mark.parametrize("service", ["enforcement", "matching", "transfer"])
def test_every_service_in_production_refuses_plaintext(service):
    proc = start(service, OIOO_ENV="production")
    assert proc.returncode != 0
    assert "KAFKA_SECURITY_PROTOCOL is PLAINTEXT: production needs SASL_SSL" in proc.stderr


def test_the_topic_job_in_production_refuses_plaintext_and_does_not_ask_for_redis(monkeypatch):
    from deploy import create_topics

    for k in list(os.environ):
        if k.startswith(("KAFKA_", "REDIS_", "SIGNING_", "OIOO_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("OIOO_ENV", "production")
    with pytest.raises(SystemExit) as exc:
        create_topics.main(["--bootstrap", "127.0.0.1:9", "--wait", "1"])
    assert "KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in str(exc.value.code) and "Redis" not in str(exc.value.code)
