"""`make secrets`: the certificates, passwords and signing keys of a new deployment.

Writes into a git-ignored directory (default `.secrets/`, or env OIOO_SECRETS_DIR, or --dir),
creating only what is missing, so running it again never changes a secret in use:

    ca.key, ca.crt                   the deployment's own CA (ca.key is never mounted anywhere)
    kafka.p12, kafka-keystore.password   the broker's key and certificate (SAN kafka, localhost)
    kafka-admin.password             the broker's super user (inter-broker, ACL setup only)
    kafka-users/<user>.password      one SCRAM password per user of deploy/acls.py
    redis.key, redis.crt             Redis's TLS key and certificate (SAN redis, localhost)
    redis-users/<user>.password      one Redis ACL password per service, and `health`
    redis-users.acl                  Redis's ACL file (password hashes only; rewritten each run)
    signing-keys.json                the inbound keyring: one key per outside party that writes

Certificates come from the `openssl` command line. The directory is 0700; the files in it are
0644 because compose bind-mounts them into containers that run as non-root users (ca.key stays
0600). Hand each outside party its Kafka password and signing key out of band.

Key rotation (see README "Security"):
    python -m deploy.secrets rotate-signing-key terminals   # adds a new key; the old one stays
    python -m deploy.secrets retire-signing-key <key_id>    # once the party signs with the new one
Intake picks up the changed keyring within a second, without a restart.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import string
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from deploy.acls import PARTIES, SERVICES, USERS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".secrets"
REDIS_USERS = SERVICES + ("health",)
CERT_DAYS = 825
_ALPHABET = string.ascii_letters + string.digits


def secrets_dir(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get("OIOO_SECRETS_DIR") or DEFAULT_DIR).resolve()


def _password(n: int = 40) -> str:
    # letters and digits only: it goes into Kafka's SCRAM config syntax and a JAAS string
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """Write atomically (a reader never sees half a file) with the given mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ensure_password(path: Path, made: list[str]) -> str:
    if not path.exists():
        _write(path, _password() + "\n")
        made.append(str(path))
    return path.read_text(encoding="utf-8").strip()


def _ensure_ca(d: Path, made: list[str]) -> None:
    if (d / "ca.crt").exists() and (d / "ca.key").exists():
        return
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", str(CERT_DAYS * 2),
             "-subj", "/CN=oioo deployment CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(d / "ca.key", 0o600)
    os.chmod(d / "ca.crt", 0o644)
    made += [str(d / "ca.key"), str(d / "ca.crt")]


def _issue(d: Path, name: str, sans: list[str], work: Path) -> tuple[Path, Path]:
    """A key and a certificate signed by the CA, for server and client use."""
    key, csr, crt, ext = (work / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text("basicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   f"subjectAltName={','.join(sans)}\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
             "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS),
             "-extfile", str(ext), "-out", str(crt))
    return key, crt


def _ensure_kafka_tls(d: Path, made: list[str]) -> None:
    if (d / "kafka.p12").exists():
        return
    password = _ensure_password(d / "kafka-keystore.password", made)
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        work = Path(tmp)
        key, crt = _issue(d, "kafka", ["DNS:kafka", "DNS:localhost", "IP:127.0.0.1"], work)
        pass_file = work / "pass"
        _write(pass_file, password, 0o600)
        _openssl("pkcs12", "-export", "-in", str(crt), "-inkey", str(key), "-certfile", str(d / "ca.crt"),
                 "-name", "kafka", "-out", str(work / "kafka.p12"), "-passout", f"file:{pass_file}")
        _write(d / "kafka.p12", (work / "kafka.p12").read_bytes())
    made.append(str(d / "kafka.p12"))


def _ensure_redis_tls(d: Path, made: list[str]) -> None:
    if (d / "redis.crt").exists() and (d / "redis.key").exists():
        return
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        key, crt = _issue(d, "redis", ["DNS:redis", "DNS:localhost", "IP:127.0.0.1"], Path(tmp))
        _write(d / "redis.key", key.read_bytes())
        _write(d / "redis.crt", crt.read_bytes())
    made += [str(d / "redis.key"), str(d / "redis.crt")]


def redis_acl(passwords: dict[str, str]) -> str:
    """Redis ACL file: each service only its own keys ("{<service>}:*", the hash tag that keeps a
    commit script's keys in one cluster slot), no dangerous commands."""
    lines = ["user default off resetkeys -@all"]
    for user, password in passwords.items():
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        if user == "health":
            lines.append(f"user health on #{digest} resetkeys resetchannels -@all +ping")
        else:
            lines.append(f"user {user} on #{digest} resetkeys ~{{{user}}}:* resetchannels -@all "
                         "+@read +@write +@keyspace +@scripting +@transaction +@connection -@dangerous")
    return "\n".join(lines) + "\n"


def _new_key_id(party: str, taken: set[str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    while True:
        key_id = f"{party}-{stamp}-{secrets.token_hex(2)}"
        if key_id not in taken:
            return key_id


def _ensure_keyring(d: Path, made: list[str]) -> None:
    path = d / "signing-keys.json"
    if path.exists():
        return
    keyring: dict[str, dict] = {}
    for party in PARTIES:
        if party.writes:
            keyring[_new_key_id(party.user, set(keyring))] = {
                "secret": secrets.token_urlsafe(48), "topics": list(party.writes)}
    _write(path, json.dumps(keyring, indent=2) + "\n")
    made.append(str(path))


def generate(d: Path) -> list[str]:
    """Create whatever is missing under `d`; returns the paths written."""
    made: list[str] = []
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    for sub in ("kafka-users", "redis-users"):
        (d / sub).mkdir(exist_ok=True)
        os.chmod(d / sub, 0o755)  # the containers' non-root users must open the files inside
    _ensure_ca(d, made)
    _ensure_kafka_tls(d, made)
    _ensure_redis_tls(d, made)
    _ensure_password(d / "kafka-admin.password", made)
    for user in USERS:
        _ensure_password(d / "kafka-users" / f"{user}.password", made)
    redis_pw = {u: _ensure_password(d / "redis-users" / f"{u}.password", made) for u in REDIS_USERS}
    _write(d / "redis-users.acl", redis_acl(redis_pw))
    _ensure_keyring(d, made)
    return made


def _keyring_edit(d: Path, edit) -> None:
    path = d / "signing-keys.json"
    keyring = json.loads(path.read_text(encoding="utf-8"))
    edit(keyring)
    _write(path, json.dumps(keyring, indent=2) + "\n")


def rotate_signing_key(d: Path, party: str) -> str:
    """Add a new key for `party` beside its current ones; returns the new key id."""
    writes = {p.user: p.writes for p in PARTIES if p.writes}
    if party not in writes:
        raise SystemExit(f"no outside party {party!r} signs events; one of: {', '.join(writes)}")
    new_id = ""

    def add(keyring: dict) -> None:
        nonlocal new_id
        new_id = _new_key_id(party, set(keyring))
        keyring[new_id] = {"secret": secrets.token_urlsafe(48), "topics": list(writes[party])}

    _keyring_edit(d, add)
    return new_id


def retire_signing_key(d: Path, key_id: str) -> None:
    def drop(keyring: dict) -> None:
        if key_id not in keyring:
            raise SystemExit(f"no key {key_id!r} in the keyring")
        del keyring[key_id]

    _keyring_edit(d, drop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.secrets", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help=f"default: env OIOO_SECRETS_DIR or {DEFAULT_DIR}")
    sub = parser.add_subparsers(dest="command")
    rotate = sub.add_parser("rotate-signing-key", help="add a new signing key for a party")
    rotate.add_argument("party")
    retire = sub.add_parser("retire-signing-key", help="remove a signing key by key id")
    retire.add_argument("key_id")
    args = parser.parse_args(argv)
    d = secrets_dir(args.dir)
    if args.command == "rotate-signing-key":
        print(f"added signing key {rotate_signing_key(d, args.party)} to {d / 'signing-keys.json'}; "
              "give its secret to the party, then retire the old key id")
        return 0
    if args.command == "retire-signing-key":
        retire_signing_key(d, args.key_id)
        print(f"removed signing key {args.key_id} from {d / 'signing-keys.json'}")
        return 0
    made = generate(d)
    print(f"secrets in {d}: {len(made)} new file(s)" + "".join(f"\n  {m}" for m in made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
