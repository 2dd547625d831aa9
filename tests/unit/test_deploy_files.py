"""The deployment files agree with the code they describe."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from deploy.embedded import SERVICES
from shared.topics import TOPICS, topics_json

ROOT = Path(__file__).resolve().parents[2]


def test_topics_json_is_generated_from_the_catalogue():
    on_disk = (ROOT / "deploy" / "topics.json").read_text(encoding="utf-8")
    assert json.loads(on_disk) == json.loads(topics_json()), "run `make topics-json`"
    assert len(json.loads(on_disk)) == len(TOPICS)


def test_compose_runs_every_service_module():
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for name in SERVICES:
        assert re.search(rf'^  {name}:\n(.*\n)*?    command: \["python", "-m", "services\.{name}"\]', compose, re.M), name
    assert '"deploy.create_topics"' in compose and "--appendonly" in compose


# ---- production security: users, ACLs, secrets, the compose file ---------------------------

import ast  # noqa: E402
import json as _json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from deploy import acls as acl_list  # noqa: E402
from deploy import secrets as deploy_secrets  # noqa: E402
from shared import topics as t  # noqa: E402
from shared.security import production_problems_of  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.signing import production_problems, read_keys  # noqa: E402

OUTSIDE = set(acl_list.PARTY_USERS)
SYSTEM_PUBLISHED = {s.name for s in TOPICS} - set(t.INBOUND_TOPICS)


def _topics_named_in_code(service: str) -> set[str]:
    """Every catalogue topic the service's own code names as `topics.X`."""
    named = set()
    for path in (ROOT / "services" / service).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "topics"):
                value = getattr(t, node.attr, None)
                if isinstance(value, str) and value in t.TOPICS_BY_NAME:
                    named.add(value)
    return named


def _acls_of(user: str) -> set[tuple[str, str, str, str]]:
    return {(a.resource, a.name, a.pattern, a.operation) for a in acl_list.acls() if a.user == user}


def test_kafka_acl_script_is_generated_from_deploy_acls():
    assert acl_list.SCRIPT.read_text(encoding="utf-8") == acl_list.render_script(), "run `make acls`"


def test_kafka_acl_script_sets_exactly_the_listed_users_and_acls():
    users, rules = [], set()
    for line in acl_list.SCRIPT.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["scram"]:
            users.append(words[1])
        elif words[:1] == ["allow"]:
            user, pattern, operation, rest = words[1], words[2], words[3], words[4:]
            assert len(rest) % 2 == 0 and rest, line
            for flag, name in zip(rest[::2], rest[1::2]):
                rules.add(acl_list.Acl(user, flag.removeprefix("--"), name, pattern, operation))
    assert sorted(users) == sorted(acl_list.USERS)
    assert rules == set(acl_list.acls())
    assert acl_list.ADMIN not in users and all(a.user != acl_list.ADMIN for a in rules)


@pytest.mark.parametrize("service", acl_list.SERVICES)
def test_each_service_may_use_exactly_what_it_consumes_and_produces(service):
    inputs = set(acl_list.service_inputs()[service])
    produced = _topics_named_in_code(service) - inputs
    # the declared outputs are what the code publishes (beyond what the runtime publishes for
    # every service), no more, no less
    assert set(acl_list.service_outputs()[service]) == produced - set(acl_list.RUNTIME_OUTPUTS), service
    expected = {("topic", topic, "literal", "Read") for topic in inputs}
    expected.add(("group", f"oioo-{service}", "literal", "Read"))
    expected |= {("topic", topic, "literal", "Write") for topic in produced | set(acl_list.RUNTIME_OUTPUTS)}
    assert _acls_of(service) == expected


def test_the_runtime_group_is_the_one_the_acls_allow():
    runtime = (ROOT / "shared" / "runtime.py").read_text(encoding="utf-8")
    assert 'f"oioo-{service.name}"' in runtime
    assert all(acl_list.consumer_group(s) == f"oioo-{s}" for s in acl_list.SERVICES)


def test_topic_job_may_create_and_describe_the_catalogue_only():
    assert _acls_of(acl_list.TOPICS_JOB) == {
        ("topic", s.name, "literal", op) for s in TOPICS for op in ("Create", "Describe")}


def test_the_audit_job_only_reads_what_whatif_needs():
    assert _acls_of(acl_list.AUDIT_JOB) == {("topic", topic, "literal", "Read") for topic in acl_list.AUDIT_READS}


def test_outside_parties_reach_only_their_own_topics():
    assert _acls_of("terminals") == {("topic", t.BORDER_ARRIVALS, "literal", "Write")}
    assert _acls_of("french-liaison") == {
        ("topic", "liaison.uk.", "prefixed", "Read"),
        ("topic", t.LIAISON_FR_DECISIONS, "literal", "Write"),
        ("group", "french-liaison-", "prefixed", "Read"),
    }
    for a in acl_list.acls():
        if a.user not in OUTSIDE or a.resource != "topic":
            continue
        reach = {s.name for s in TOPICS if (s.name == a.name if a.pattern == "literal" else s.name.startswith(a.name))}
        assert reach, f"{a} names no topic"
        assert not any(n.startswith("internal.") for n in reach), f"{a.user} reaches an internal topic"
        assert a.name != "*" and a.name.strip(), a
        if a.operation == "Write":
            # no outside party can forge what the system publishes
            assert not reach & SYSTEM_PUBLISHED, f"{a.user} may write {reach & SYSTEM_PUBLISHED}"
        else:
            assert a.operation == "Read", a
    for a in acl_list.acls():
        if a.user in OUTSIDE and a.resource == "group":
            assert a.pattern == "prefixed" and a.name == f"{a.user}-", a
    # every inbound topic has exactly one outside writer; every published topic a reader
    writers = {topic: [p.user for p in acl_list.PARTIES if topic in p.writes] for topic in t.INBOUND_TOPICS}
    assert all(len(w) == 1 for w in writers.values()), writers
    read = {s for p in acl_list.PARTIES for s in p.reads}
    read |= {s for p in acl_list.PARTIES for pre in p.read_prefixes for s in SYSTEM_PUBLISHED if s.startswith(pre)}
    assert SYSTEM_PUBLISHED - read == {s.name for s in TOPICS if s.internal}


def test_only_services_write_internal_topics():
    for a in acl_list.acls():
        if a.resource == "topic" and a.name.startswith("internal.") and a.operation == "Write":
            assert a.user in acl_list.SERVICES, a


# ---- make secrets ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("secrets") / "s"
    deploy_secrets.generate(d)
    return d


def test_make_secrets_writes_every_credential_and_keeps_them(secrets_dir):
    d = secrets_dir
    for user in acl_list.USERS:
        assert len((d / "kafka-users" / f"{user}.password").read_text().strip()) >= 32, user
    acl = (d / "redis-users.acl").read_text()
    assert "user default off" in acl
    for service in acl_list.SERVICES:
        password = (d / "redis-users" / f"{service}.password").read_text().strip()
        assert password not in acl  # only its hash is in the ACL file
        assert f"user {service} on #{hashlib_sha256(password)} " in acl and f"~{{{service}}}:*" in acl
    keys = read_keys(d / "signing-keys.json")
    assert production_problems(keys) == []
    assert sorted(topic for k in keys.values() for topic in k.topics) == sorted(t.INBOUND_TOPICS)
    assert (d.stat().st_mode & 0o777) == 0o700 and ((d / "ca.key").stat().st_mode & 0o077) == 0
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    assert deploy_secrets.generate(d) == []
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_certificates_verify_for_the_compose_host_names(secrets_dir):
    d = secrets_dir
    for name in ("redis",):
        out = subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.crt"), "-verify_hostname", name,
                              str(d / f"{name}.crt")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    pw = (d / "kafka-keystore.password").read_text().strip()
    pem = subprocess.run(["openssl", "pkcs12", "-in", str(d / "kafka.p12"), "-passin", f"pass:{pw}", "-nokeys",
                          "-clcerts"], capture_output=True, text=True, check=True).stdout
    crt = d / "kafka-from-p12.crt"
    crt.write_text(pem)
    for host in ("kafka", "localhost"):
        out = subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.crt"), "-verify_hostname", host, str(crt)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_signing_keys_rotate_with_an_overlap(secrets_dir, tmp_path):
    d = tmp_path / "rot"
    shutil.copytree(secrets_dir, d)
    old = {k for k, v in _json.loads((d / "signing-keys.json").read_text()).items() if "border.arrivals.v1" in v["topics"]}
    new = deploy_secrets.rotate_signing_key(d, "terminals")
    ring = read_keys(d / "signing-keys.json")
    assert old | {new} <= set(ring) and ring[new].topics == {t.BORDER_ARRIVALS}
    for key_id in old:
        deploy_secrets.retire_signing_key(d, key_id)
    assert {k for k, v in read_keys(d / "signing-keys.json").items() if t.BORDER_ARRIVALS in v.topics} == {new}


def test_no_secret_is_committed():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = out.stdout.splitlines()
    suspicious = [f for f in tracked if f.startswith(".secrets/") or f.endswith((".password", ".p12", ".key", ".pem", ".acl"))
                  or (f.endswith("signing-keys.json"))]
    assert suspicious == []
    assert subprocess.run(["git", "check-ignore", "-q", ".secrets/ca.key"], cwd=ROOT).returncode == 0


def hashlib_sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# ---- docker-compose config -------------------------------------------------------------------

def _rendered_compose(secrets: Path) -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run does)")
    env = {**os.environ, "OIOO_SECRETS_DIR": str(secrets)}
    out = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # docker-compose's own interpreter has PyYAML (its dependency); the project's venv need not
    interpreter = Path(binary).read_text(encoding="utf-8", errors="replace").splitlines()[0].removeprefix("#!").split()
    as_json = subprocess.run([*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                             input=out.stdout, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    return _json.loads(as_json.stdout)


def _secret_files(compose: dict, service: dict) -> dict[str, Path]:
    """/run/secrets/<name> -> the host file compose mounts there."""
    return {f"/run/secrets/{s['source']}": Path(compose["secrets"][s["source"]]["file"])
            for s in service.get("secrets", [])}


def test_compose_renders_with_sasl_tls_acls_and_redis_passwords(secrets_dir):
    compose = _rendered_compose(secrets_dir)
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["entrypoint"][-1] == "/oioo/kafka-start.sh"
    start = (ROOT / "deploy" / "compose" / "kafka-start.sh").read_text(encoding="utf-8")
    assert "listener.security.protocol.map=INTERNAL:SASL_SSL,HOST:SASL_SSL,CONTROLLER:SSL" in start
    assert "PLAINTEXT" not in start and "allow.everyone.if.no.acl.found=false" in start
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in start
    acl_step = services["kafka-acls"]
    assert acl_step["entrypoint"][-1] == "/oioo/kafka-acls.sh"
    assert any(v.endswith(":/run/oioo/kafka-users:ro") and v.startswith(str(secrets_dir)) for v in
               (_volume(v) for v in acl_step["volumes"]))
    assert services["topics"]["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"
    redis = services["redis"]["command"]
    assert redis[redis.index("--port") + 1] == "0" and "--tls-port" in redis and "--aclfile" in redis
    for name, secret in compose["secrets"].items():
        assert Path(secret["file"]).is_relative_to(secrets_dir), f"secret {name} is not from `make secrets`"
        assert Path(secret["file"]).exists(), f"`make secrets` did not write the file of secret {name}"


def _volume(v) -> str:
    if isinstance(v, str):
        return v
    return f"{v['source']}:{v['target']}" + (":ro" if v.get("read_only") else "")


@pytest.mark.parametrize("service", SERVICES + ("topics",))
def test_compose_gives_every_service_its_own_credentials_and_they_pass_the_production_check(service, secrets_dir):
    compose = _rendered_compose(secrets_dir)
    spec = compose["services"][service]
    env = {k: str(v) for k, v in spec["environment"].items()}
    files = _secret_files(compose, spec)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_USERNAME"] == service
    assert files[env["KAFKA_PASSWORD_FILE"]] == secrets_dir / "kafka-users" / f"{service}.password"
    assert env["KAFKA_CA_FILE"] in files
    assert ("signing_keys" in {s["source"] for s in spec.get("secrets", [])}) == (service == "intake")
    assert env["OIOO_ENV"] == "production"
    uses_redis = service != "topics"
    if uses_redis:
        assert env["REDIS_USERNAME"] == service
        assert files[env["REDIS_PASSWORD_FILE"]] == secrets_dir / "redis-users" / f"{service}.password"
    # the service's settings as compose gives them, with the mounted files where compose puts them
    mounted = {k: str(files.get(v, v)) for k, v in env.items()}
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("KAFKA_", "REDIS_", "SIGNING_", "OIOO_")):
                mp.delenv(k)
        for k, v in mounted.items():
            mp.setenv(k, v)
        assert production_problems_of(Settings.from_env(), redis=uses_redis) == []
