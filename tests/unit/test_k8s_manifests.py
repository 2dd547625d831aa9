"""deploy/k8s renders, validates offline, and says what the code and the topic catalogue say.

Rendered with `kubectl kustomize`; core resources checked against the Kubernetes schemas of
the PyPI package kubernetes-validate (strict: an unknown field fails), custom resources against
their CRDs' own openAPI schemas vendored in deploy/k8s/schemas (made strict the same way).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

import deploy.k8s_topics
import services.enforcement.app
from deploy.create_topics import with_shards
from shared.shards import Shard
from deploy.k8s_topics import kafka_topics_yaml
from services.enforcement.app import Enforcement
from services.intake.app import Intake
from services.matching.app import Matching
from services.transfer.app import Transfer
from shared.settings import Settings
from shared.topics import ENFORCEMENT_SCREENED, INTAKE_ACCEPTED

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
KUBERNETES_VERSION = "1.32.0"
SERVICES = {s.name: s for s in (Intake, Enforcement, Matching, Transfer)}
# The services that run in shards (shared/shards.py): StatefulSets of 2 x <their count> pods,
# growing by shards, never scaled by KEDA.
SHARDED = {name for name, s in SERVICES.items() if s.shards_setting}
CUSTOM = {  # (apiVersion, kind) -> the vendored openAPIV3Schema of that CRD version
    ("kafka.strimzi.io/v1", "Kafka"): "kafka.strimzi.io_v1_Kafka.json",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "kafka.strimzi.io_v1_KafkaNodePool.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafka.strimzi.io_v1_KafkaTopic.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "kafka.strimzi.io_v1_KafkaUser.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_ScaledObject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_TriggerAuthentication.json",
}
# Secrets the manifests use but never contain: made by hand (README.md) or by Strimzi.
SECRETS_BY_HAND = {"oioo-signing-keys", "oioo-redis"}
SECRETS_BY_STRIMZI = {"oioo-kafka-cluster-ca-cert", "oioo-keda"} | {f"oioo-{n}" for n in SERVICES}


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: it renders deploy/k8s (`kubectl kustomize`)")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert docs, "kubectl kustomize rendered nothing"
    return docs


def _of(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _topics() -> dict[str, dict]:
    return {t["name"]: t for t in json.loads((ROOT / "deploy" / "topics.json").read_text(encoding="utf-8"))}


def _partitions(rendered, topic_names) -> int:
    """The partitions the cluster's topics have (the rendered KafkaTopics: the accepted events'
    topic has one per intake shard, not topics.json's one)."""
    topics = {t["spec"]["topicName"]: t["spec"] for t in _of(rendered, "KafkaTopic").values()}
    return sum(topics[t]["partitions"] for t in topic_names)


def _strict(schema):
    """Reject unknown fields where the CRD lists the fields (as the API server's strict field
    validation does); leave alone what the CRD marks as free-form."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (_strict(v) if k != "properties" else {p: _strict(s) for p, s in v.items()}) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


# ---- the manifests are valid -----------------------------------------------------------------
def test_core_resources_validate_against_the_kubernetes_schemas(rendered):
    core = [d for d in rendered if (d["apiVersion"], d["kind"]) not in CUSTOM]
    assert {d["kind"] for d in core} >= {"Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment",
                                         "PodDisruptionBudget", "NetworkPolicy"}
    errors = []
    for doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not errors, "\n".join(errors)


def test_custom_resources_validate_against_their_crds(rendered):
    validators = {key: jsonschema.Draft4Validator(_strict(json.loads((SCHEMAS / f).read_text(encoding="utf-8"))))
                  for key, f in CUSTOM.items()}
    seen = set()
    for doc in rendered:
        key = (doc["apiVersion"], doc["kind"])
        if key not in validators:
            assert not key[0].endswith((".strimzi.io/v1beta2", "keda.sh/v1alpha1", ".strimzi.io/v1")), key
            continue
        seen.add(key)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validators[key].iter_errors(doc)]
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {errors}"
    assert seen == set(CUSTOM), f"no resource of {set(CUSTOM) - seen}"


def test_the_strict_crd_check_catches_a_misspelt_field():
    schema = _strict(json.loads((SCHEMAS / CUSTOM[("keda.sh/v1alpha1", "ScaledObject")]).read_text(encoding="utf-8")))
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicaCout": 3,
                    "triggers": [{"type": "kafka", "metadata": {"topic": "t"}}]}}
    assert any("maxReplicaCout" in e.message for e in jsonschema.Draft4Validator(schema).iter_errors(bad))


def test_nothing_secret_is_committed_and_every_secret_used_is_accounted_for(rendered):
    assert not _of(rendered, "Secret"), "Secrets are created in the cluster, never committed"
    used = set()

    def walk(node):
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secret"):
                ref = node.get(key)
                if isinstance(ref, dict):
                    used.add(ref.get("name") or ref.get("secretName"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(rendered)
    for ta in _of(rendered, "TriggerAuthentication").values():
        used |= {ref["name"] for ref in ta["spec"].get("secretTargetRef", [])}
    assert used == SECRETS_BY_HAND | SECRETS_BY_STRIMZI
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    for name in SECRETS_BY_HAND:
        assert re.search(rf"kubectl -n oioo create secret generic {name}\b", readme), f"README: how to create {name}"


# ---- the services ----------------------------------------------------------------------------
def _settings(rendered) -> dict[str, str]:
    (cm,) = [c for n, c in _of(rendered, "ConfigMap").items() if n.startswith("oioo-settings")]
    return cm["data"]


def _services(rendered) -> dict[str, dict]:
    """Each service's workload: a Deployment, or the StatefulSet of a service in shards (intake,
    enforcement: their pods need an index)."""
    return {name: w for kind in ("Deployment", "StatefulSet") for name, w in _of(rendered, kind).items()
            if name in SERVICES}


def _intake_shards(rendered) -> int:
    return int(_settings(rendered)["INTAKE_SHARDS"])


def _enforcement_shards(rendered) -> int:
    return int(_settings(rendered)["ENFORCEMENT_SHARDS"])


def test_every_service_runs_from_the_one_image_with_health_probes_non_root_and_a_grace(rendered):
    deployments = _services(rendered)
    assert set(deployments) == set(SERVICES)
    settings = _settings(rendered)
    assert settings["OIOO_ENV"] == "production"
    health_port = int(settings["HEALTH_PORT"])
    uid = int(re.search(r"useradd .*--uid (\d+)", (ROOT / "deploy" / "Dockerfile").read_text()).group(1))
    images = set()
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        images.add(c["image"])
        assert c["command"] == ["python", "-m", f"services.{name}"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, (name, probe)
            assert ports.get(get["port"], get["port"]) == health_port, (name, probe)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["terminationGracePeriodSeconds"] >= 15
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
        env = {e["name"]: e for e in c["env"]}
        assert env["KAFKA_USERNAME"]["value"] == f"oioo-{name}"
        assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"oioo-{name}"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "oioo-redis", "key": "password"}
        assert "$(REDIS_PASSWORD)@" in env["REDIS_URL"]["value"]
        assert [e["configMapRef"]["name"] for e in c["envFrom"]] == [
            n for n in _of(rendered, "ConfigMap") if n.startswith("oioo-settings")]
        # Only intake checks signatures: only intake gets the keyring.
        assert ("SIGNING_KEYS_FILE" in env) == (name == "intake"), name
    assert len(images) == 1


def test_intake_reads_its_keyring_from_the_mounted_secret(rendered):
    pod = _services(rendered)["intake"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    path = {e["name"]: e for e in c["env"]}["SIGNING_KEYS_FILE"]["value"]
    (mount,) = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "oioo-signing-keys"


def test_matching_is_two_replicas_one_active_one_standby_and_never_scaled(rendered):
    assert _of(rendered, "Deployment")["matching"]["spec"]["replicas"] == 2
    targets = [so["spec"]["scaleTargetRef"]["name"] for so in _of(rendered, "ScaledObject").values()]
    assert "matching" not in targets
    assert not _of(rendered, "HorizontalPodAutoscaler")


def test_consumers_scale_on_their_group_lag_within_their_partitions(rendered):
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in _of(rendered, "ScaledObject").values()}
    deployments = _services(rendered)
    for name, service in SERVICES.items():
        if name == "matching":
            continue
        if name in SHARDED:
            # Grows by shards, not by replicas (test_intake_runs_in_shards_...,
            # test_enforcement_runs_in_shards_...): a replica past 2 x its shards would only be
            # one more standby.
            assert name not in scaled, name
            continue
        partitions = _partitions(rendered, service.input_topics)
        if partitions < 2:
            # Nothing to scale: one partition, one consumer; a second replica is the standby.
            assert name not in scaled, name
            assert deployments[name]["spec"]["replicas"] == 2, name
            continue
        so = scaled[name]["spec"]
        assert 2 <= so["minReplicaCount"] <= so["maxReplicaCount"] <= partitions, name
        assert deployments[name]["spec"]["replicas"] == so["minReplicaCount"]
        triggers = so["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {f"oioo-{name}"}
        assert sorted(t["metadata"]["topic"] for t in triggers) == sorted(service.input_topics), name
        for t in triggers:
            assert t["metadata"]["bootstrapServers"] == _settings(rendered)["KAFKA_BOOTSTRAP_SERVERS"]
            assert t["authenticationRef"]["name"] in _of(rendered, "TriggerAuthentication")
    assert SHARDED == {"intake", "enforcement"}
    assert set(scaled) <= set(SERVICES) - {"matching"} - SHARDED


# ---- Kafka -----------------------------------------------------------------------------------
def test_kafka_is_kraft_three_brokers_rf3_min_isr2_tls_scram(rendered):
    (kafka,) = _of(rendered, "Kafka").values()
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    pools = [p for p in _of(rendered, "KafkaNodePool").values()
             if p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]]
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == 3
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) in (3, 5)
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["offsets.topic.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    host, port = _settings(rendered)["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap" and int(port) == listener["port"]


def test_kafka_topics_are_the_generated_ones_and_match_topics_json(rendered):
    shards = _intake_shards(rendered), _enforcement_shards(rendered)
    committed = (K8S / "kafka" / "topics.yaml").read_text(encoding="utf-8")
    assert committed == kafka_topics_yaml(list(_topics().values()), *shards), \
        ("run `python -m deploy.k8s_topics --intake-shards %d --enforcement-shards %d "
         "> deploy/k8s/kafka/topics.yaml`" % shards)
    topics = {t["spec"]["topicName"]: t["spec"] for t in _of(rendered, "KafkaTopic").values()}
    assert set(topics) == set(_topics())
    for spec in with_shards(list(_topics().values()), *shards):
        name = spec["name"]
        assert topics[name]["partitions"] == spec["partitions"], name
        assert topics[name]["replicas"] == 3, name
        assert topics[name]["config"] == spec["config"], name


def test_each_service_logs_in_as_itself_and_reads_only_its_topics_and_group(rendered):
    users = _of(rendered, "KafkaUser")
    catalogue = set(_topics())
    for name, service in SERVICES.items():
        grants = defaultdict(set)
        for acl in users[f"oioo-{name}"]["spec"]["authorization"]["acls"]:
            # Names exactly, but for the groups of a service whose shards each read in a group
            # of their own (enforcement: oioo-enforcement, oioo-enforcement-s1, ...), which may
            # be the prefix `oioo-<name>` (test_enforcement_runs_in_shards_...).
            resource = acl["resource"]
            assert resource["patternType"] == "literal" or (
                SERVICES[name].reads_every_partition and resource["type"] == "group"
                and resource["patternType"] == "prefix" and resource["name"] == f"oioo-{name}"), (name, resource)
            for op in acl["operations"]:
                grants[op].add((acl["resource"]["type"], acl["resource"]["name"]))
        assert grants["Read"] == {("topic", t) for t in service.input_topics} | {("group", f"oioo-{name}")}, name
        assert {t for kind, t in grants["Write"] if kind == "topic"} <= catalogue
        assert {("topic", "ops.dead-letters.v1"), ("topic", "ops.alerts.v1")} <= grants["Write"], name
        assert not grants["Write"] & {("topic", t) for t in service.input_topics}, name
        assert set(grants) <= {"Read", "Write", "Describe"}, name
    keda = users["oioo-keda"]["spec"]["authorization"]["acls"]
    assert {op for acl in keda for op in acl["operations"]} == {"Describe"}
    # only the groups KEDA scales, and their topics
    triggers = [t["metadata"] for so in _of(rendered, "ScaledObject").values() for t in so["spec"]["triggers"]]
    assert {(a["resource"]["type"], a["resource"]["name"]) for a in keda} == \
        {("group", t["consumerGroup"]) for t in triggers} | {("topic", t["topic"]) for t in triggers}


# ---- Redis -----------------------------------------------------------------------------------
def test_redis_has_a_replica_sentinels_aof_and_a_password_from_a_secret(rendered):
    sets = _of(rendered, "StatefulSet")
    assert sets["oioo-redis"]["spec"]["replicas"] == 2
    assert sets["oioo-redis-sentinel"]["spec"]["replicas"] == 3
    config = _of(rendered, "ConfigMap")["oioo-redis"]["data"]
    assert re.search(r"^appendonly yes$", config["redis.conf"], re.M)
    assert "requirepass ${REDIS_PASSWORD}" in config["start-redis.sh"]
    assert "sentinel monitor oioo " in config["start-sentinel.sh"] and " 2\n" in config["start-sentinel.sh"]
    for s in sets.values():
        (c,) = s["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "oioo-redis", "key": "password"}
    url = {e["name"]: e for e in _of(rendered, "Deployment")["matching"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "@oioo-redis-primary:6379/" in url["REDIS_URL"]["value"]
    assert "oioo-redis-primary" in _of(rendered, "Service")


# The names the services' code reads from the environment (shared/settings.py and the rest of shared/).
_READ = re.compile(r'(?:_env\(|environ\.get\(|environ\[)\s*"([A-Z0-9_]+)"')


def test_every_setting_a_service_pod_is_given_is_one_the_services_read(rendered):
    read = {name for path in (ROOT / "shared").glob("*.py") for name in _READ.findall(path.read_text())}
    assert {"KAFKA_USERNAME", "KAFKA_PASSWORD", "REDIS_URL"} <= read  # the scan finds them
    configmaps = _of(rendered, "ConfigMap")
    for name, dep in _services(rendered).items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        given = {e["name"] for e in c["env"]}
        for source in c.get("envFrom", []):
            given |= set(configmaps[source["configMapRef"]["name"]]["data"])
        # a name the code does not read is a setting silently not applied (a Kafka login, a CA)
        assert given <= read, (name, sorted(given - read))


# ---- intake in shards ------------------------------------------------------------------------
def _effective_env(rendered, workload: dict) -> dict[str, object]:
    """What a pod's container is given, as the kubelet resolves it: envFrom first, env over it."""
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    configmaps = _of(rendered, "ConfigMap")
    given: dict[str, object] = {}
    for source in c.get("envFrom", []):
        given.update(configmaps[source["configMapRef"]["name"]]["data"])
    for e in c.get("env", []):
        given[e["name"]] = e.get("value", e.get("valueFrom"))
    return given


def _shard_env(monkeypatch, variable: str, count: object, index: int) -> Settings:
    """The settings a pod of a StatefulSet in shards reads: the count from the ConfigMap, its
    ordinal as POD_INDEX, no SERVICE_SHARD."""
    monkeypatch.delenv("SERVICE_SHARD", raising=False)
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)  # build() must not look for Sentinels
    monkeypatch.setenv(variable, str(count))
    monkeypatch.setenv("POD_INDEX", str(index))
    return Settings.from_env()


def _runs_in_shards(rendered, monkeypatch, name: str, output_topic: str, readers: tuple[str, ...]) -> dict:
    """What intake and enforcement in shards have in common; returns the StatefulSet's spec."""
    setting = SERVICES[name].shards_setting
    variable = setting.upper()
    shards = int(_settings(rendered)[variable])
    assert shards >= 1
    # what `make k8s-topics` renders the output topic for
    assert getattr(deploy.k8s_topics, variable) == shards, f"deploy/k8s_topics.py {variable} != the kustomization's"

    # A StatefulSet (stable pod indexes), two pods per shard, governed by a headless Service.
    assert name not in _of(rendered, "Deployment")
    sts = _of(rendered, "StatefulSet")[name]["spec"]
    assert sts["replicas"] == 2 * shards, name
    assert sts["podManagementPolicy"] == "Parallel", name
    assert sts["updateStrategy"]["type"] == "RollingUpdate", name
    service = _of(rendered, "Service")[sts["serviceName"]]["spec"]
    assert service.get("clusterIP") == "None", name
    assert service["selector"].items() <= sts["template"]["metadata"]["labels"].items()
    assert service["selector"] == sts["selector"]["matchLabels"]
    # a drain never takes both pods of a shard at once
    (pdb,) = [p["spec"] for p in _of(rendered, "PodDisruptionBudget").values()
              if p["spec"]["selector"]["matchLabels"] == sts["selector"]["matchLabels"]]
    assert pdb["maxUnavailable"] == 1, name

    # Each pod learns its shard from its index; no fixed SERVICE_SHARD puts them all in one.
    env = _effective_env(rendered, _of(rendered, "StatefulSet")[name])
    assert env["POD_INDEX"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}, name
    assert "SERVICE_SHARD" not in env, name
    pods_of = defaultdict(list)
    for index in range(sts["replicas"]):
        settings = _shard_env(monkeypatch, variable, env[variable], index)
        assert getattr(settings, setting) == shards, name
        pods_of[Shard.of(settings, getattr(settings, setting)).index].append(index)
    assert pods_of == {k: [k, k + shards] for k in range(shards)}, name  # pods k and k+N: shard k

    # The shards' output topic has a partition per shard.
    (output,) = [t["spec"] for t in _of(rendered, "KafkaTopic").values() if t["spec"]["topicName"] == output_topic]
    assert output["partitions"] == shards, name

    # The service and the one that reads its output are given the same count, from the one
    # ConfigMap (envFrom), which no env entry of theirs overrides.
    configmaps = _of(rendered, "ConfigMap")
    workloads = _services(rendered)
    for reader in (name, *readers):
        (c,) = workloads[reader]["spec"]["template"]["spec"]["containers"]
        assert any(configmaps[source["configMapRef"]["name"]]["data"].get(variable) == str(shards)
                   for source in c.get("envFrom", [])), (reader, variable)
        assert variable not in {e["name"] for e in c.get("env", [])}, (reader, variable)
        assert _effective_env(rendered, workloads[reader])[variable] == str(shards), (reader, variable)
    return sts


def test_intake_runs_in_shards_an_active_pod_and_a_standby_per_shard(rendered, monkeypatch):
    # intake splits by partition: its shards commit to the one group `oioo-intake`
    _runs_in_shards(rendered, monkeypatch, "intake", INTAKE_ACCEPTED, readers=("enforcement",))


def _acl_covers(acl: dict, kind: str, name: str) -> bool:
    resource = acl["resource"]
    if resource["type"] != kind:
        return False
    return name.startswith(resource["name"]) if resource["patternType"] == "prefix" else name == resource["name"]


def test_enforcement_runs_in_shards_an_active_pod_and_a_standby_per_shard_each_in_its_own_group(rendered, monkeypatch):
    sts = _runs_in_shards(rendered, monkeypatch, "enforcement", ENFORCEMENT_SCREENED, readers=("matching",))
    shards = _enforcement_shards(rendered)

    # Enforcement splits by person: each shard reads every partition in a consumer group of its
    # own (oioo-enforcement, oioo-enforcement-s1, ...) and keeps its state under its own
    # namespace. The group a pod's runner joins is one enforcement's KafkaUser may read and
    # describe; matching reads the screened topic in its one group, as before.
    acls = _of(rendered, "KafkaUser")["oioo-enforcement"]["spec"]["authorization"]["acls"]
    group_of, namespace_of = {}, {}
    for index in range(sts["replicas"]):
        settings = _shard_env(monkeypatch, "ENFORCEMENT_SHARDS", shards, index)
        runner = services.enforcement.app.build(settings)
        assert runner.service.reads_every_partition
        group_of.setdefault(runner.shard.index, set()).add(runner.group_id)
        namespace_of.setdefault(runner.shard.index, set()).add(runner.store.ns)
        for op in ("Read", "Describe"):
            assert any(_acl_covers(a, "group", runner.group_id) and op in a["operations"] for a in acls), \
                (index, runner.group_id, op)
    assert group_of == {k: {"oioo-enforcement" + (f"-s{k}" if k else "")} for k in range(shards)}
    assert namespace_of == {k: {"enforcement" + (f"-s{k}" if k else "")} for k in range(shards)}
    # whatever the count: the next shard's group is covered too
    assert any(_acl_covers(a, "group", f"oioo-enforcement-s{shards}") and "Read" in a["operations"] for a in acls)
