"""Who may read and write what on the production Kafka: the one list, and what compose runs.

Everything about Kafka users and ACLs is derived from here:

- `USERS`: one SCRAM user per service, for the topic-creation job, and per outside party.
- `ACLS`: allow-rules only (the broker denies whatever no rule allows). A service may read its
  `input_topics` (taken from the service classes) with its own consumer group, and write what
  its `output_topics` say it publishes; an outside party may write the inbound topic it owns and
  read the outbound topics the contract names it as consumer of, with consumer groups under its
  own name. No outside party has any rule on an `internal.*` topic.
- `python -m deploy.acls script` writes `deploy/compose/kafka-acls.sh`, the one-shot step
  compose runs in the Kafka image as the admin user: it sets each user's SCRAM credential from
  the password file `make secrets` wrote, then adds exactly these ACLs. (The generated file is
  committed; tests check it matches this module, as for deploy/topics.json.)
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from shared import topics as t

SCRAM_MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"  # super user: the broker's own inter-broker login and this setup step only
TOPICS_JOB = "topics"
# `oioo export-history` / `oioo whatif` read matching's recorded input, the particulars transfer
# joins to it, and what was published: our own audit tool, run by whoever answers to a court,
# read-only. Two of these topics carry personal data, so this is a user of its own.
AUDIT_JOB = "audit"
AUDIT_READS = (t.ENFORCEMENT_SCREENED, t.INTAKE_PARTICULARS, t.OPS_AUDIT, t.LIAISON_UK_RETURN_REQUESTS,
               t.LIAISON_UK_ADMISSION_NOTICES)
SCRIPT = Path(__file__).resolve().parent / "compose" / "kafka-acls.sh"

# The runtime adds a poison record's dead letter and its critical alert to every service, so
# every service may write those two besides its own `output_topics`.
RUNTIME_OUTPUTS = (t.OPS_DEAD_LETTERS, t.OPS_ALERTS)
SERVICES = ("intake", "enforcement", "matching", "transfer")


@dataclass(frozen=True)
class Party:
    """An outside party: its Kafka user, what it writes and reads (literal or prefix)."""

    user: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    read_prefixes: tuple[str, ...] = ()


# The contract's producers and consumers. Readers get consumer groups "<user>-*".
PARTIES: tuple[Party, ...] = (
    Party("terminals", writes=(t.BORDER_ARRIVALS,)),
    # Home Office casework and legal: the bans ("Home Office systems") and the audit trail.
    Party("casework", writes=(t.CASEWORK_UPDATES,), reads=(t.ENFORCEMENT_BANS, t.OPS_AUDIT)),
    Party("portal", writes=(t.ADMISSIONS_APPLICATIONS,)),
    Party("french-liaison", writes=(t.LIAISON_FR_DECISIONS,), read_prefixes=("liaison.uk.",)),
    Party("escorts", writes=(t.TRANSFERS_MOVEMENTS,)),
    Party("immigration-enforcement", writes=(t.ENFORCEMENT_ILLEGAL_WORKING,)),
    # Authorised operators: the control topic, and the restricted dead letters and the alerts.
    Party("operators", writes=(t.OPS_CONTROL,), reads=(t.OPS_DEAD_LETTERS, t.OPS_ALERTS)),
    # Ops monitoring and the Joint Committee: figures and alerts, no personal data.
    Party("monitoring", reads=(t.OPS_BALANCE, t.OPS_ALERTS)),
)
PARTY_USERS = tuple(p.user for p in PARTIES)
USERS: tuple[str, ...] = SERVICES + (TOPICS_JOB, AUDIT_JOB) + PARTY_USERS


@dataclass(frozen=True, order=True)
class Acl:
    user: str
    resource: str  # "topic" | "group"
    name: str
    pattern: str  # "literal" | "prefixed"
    operation: str  # Kafka's names: Read, Write, Create, Describe


def consumer_group(service: str) -> str:
    return f"oioo-{service}"  # what shared.runtime.Runner uses


def _service_classes() -> tuple:
    from services.enforcement.app import Enforcement
    from services.intake.app import Intake
    from services.matching.app import Matching
    from services.transfer.app import Transfer

    return Intake, Enforcement, Matching, Transfer


def service_inputs() -> dict[str, tuple[str, ...]]:
    """Each service's `input_topics`, from the service classes themselves."""
    return {cls.name: tuple(cls.input_topics) for cls in _service_classes()}


def service_outputs() -> dict[str, tuple[str, ...]]:
    """What each service publishes itself (`output_topics`), beyond the runtime's two."""
    return {cls.name: tuple(x for x in cls.output_topics if x not in RUNTIME_OUTPUTS) for cls in _service_classes()}


def _service_acls() -> list[Acl]:
    acls = []
    inputs, outputs_of = service_inputs(), service_outputs()
    for name in SERVICES:
        acls += [Acl(name, "topic", topic, "literal", "Read") for topic in inputs[name]]
        acls.append(Acl(name, "group", consumer_group(name), "literal", "Read"))
        outputs = dict.fromkeys(outputs_of[name] + RUNTIME_OUTPUTS)
        acls += [Acl(name, "topic", topic, "literal", "Write") for topic in outputs]
    return acls


def _topics_job_acls() -> list[Acl]:
    # create what is missing, then describe every topic to check its partitions
    return [Acl(TOPICS_JOB, "topic", spec.name, "literal", op)
            for spec in t.TOPICS for op in ("Create", "Describe")]


def _audit_job_acls() -> list[Acl]:
    return [Acl(AUDIT_JOB, "topic", topic, "literal", "Read") for topic in AUDIT_READS]


def _party_acls() -> list[Acl]:
    acls = []
    for p in PARTIES:
        acls += [Acl(p.user, "topic", topic, "literal", "Write") for topic in p.writes]
        acls += [Acl(p.user, "topic", topic, "literal", "Read") for topic in p.reads]
        acls += [Acl(p.user, "topic", prefix, "prefixed", "Read") for prefix in p.read_prefixes]
        if p.reads or p.read_prefixes:
            acls.append(Acl(p.user, "group", f"{p.user}-", "prefixed", "Read"))
    return acls


def acls() -> tuple[Acl, ...]:
    return tuple(sorted(set(_service_acls() + _topics_job_acls() + _audit_job_acls() + _party_acls())))


# ---- the compose step ---------------------------------------------------------------------

_HEADER = f"""\
#!/bin/sh
# GENERATED by `python -m deploy.acls script` from deploy/acls.py: do not edit by hand.
#
# One-shot setup on the production Kafka, run by compose's `kafka-acls` step in the Kafka image
# as the admin user: (1) a SCRAM credential for every user, from the password files that
# `make secrets` wrote (mounted at $USERS_DIR); (2) exactly the ACLs of deploy/acls.py. Both are
# idempotent, so the step runs on every `docker-compose up`. A rule removed from deploy/acls.py
# must also be removed on a running cluster (kafka-acls.sh --remove), see README "Security".
set -eu
BOOTSTRAP="${{KAFKA_BOOTSTRAP:-kafka:9092}}"
USERS_DIR="${{KAFKA_USERS_DIR:-/run/oioo/kafka-users}}"
CA_FILE="${{KAFKA_CA_FILE:-/run/secrets/ca_cert}}"
ADMIN_PASSWORD_FILE="${{KAFKA_ADMIN_PASSWORD_FILE:-/run/secrets/kafka_admin_password}}"
BIN=/opt/kafka/bin

umask 077
CONFIG="$(mktemp -d)/admin.properties"
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<EOF
security.protocol=SASL_SSL
sasl.mechanism={SCRAM_MECHANISM}
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="$(cat "$ADMIN_PASSWORD_FILE")";
ssl.truststore.type=PEM
ssl.truststore.location=$CA_FILE
EOF

scram() {{
  password="$(cat "$USERS_DIR/$1.password")"
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" \\
    --alter --entity-type users --entity-name "$1" \\
    --add-config "{SCRAM_MECHANISM}=[iterations=8192,password=$password]" > /dev/null
  echo "SCRAM credential set for $1"
}}

allow() {{  # allow USER PATTERN OPERATION --topic NAME [--topic NAME ...]
  user="$1"; pattern="$2"; operation="$3"; shift 3
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" \\
    --add --allow-principal "User:$user" --operation "$operation" \\
    --resource-pattern-type "$pattern" "$@" > /dev/null
  echo "allowed $user $operation ($pattern) $*"
}}

"""


def render_script() -> str:
    lines = [_HEADER]
    lines += [f"scram {user}\n" for user in USERS]
    lines.append("\n")
    grouped: dict[tuple[str, str, str], list[Acl]] = defaultdict(list)
    for acl in acls():
        grouped[(acl.user, acl.pattern, acl.operation)].append(acl)
    for (user, pattern, operation), rules in sorted(grouped.items()):
        resources = " ".join(f"--{a.resource} {a.name}" for a in rules)
        lines.append(f"allow {user} {pattern} {operation} {resources}\n")
    lines.append('\necho "kafka users and ACLs are in place"\n')
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.acls", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the ACLs, one a line")
    script = sub.add_parser("script", help=f"write the compose step's script (default {SCRIPT})")
    script.add_argument("--out", type=Path, default=SCRIPT)
    args = parser.parse_args(argv)
    if args.command == "list":
        for a in acls():
            print(f"User:{a.user:<24} {a.operation:<9} {a.resource:<5} {a.pattern:<8} {a.name}")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_script(), encoding="utf-8")
    args.out.chmod(0o755)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
