"""The topic catalogue: the contract's topics (fixed) and our internal ones (ours to shape).

`deploy/topics.json` is generated from this module's TOPICS (see `python -m shared.topics`),
so the production topic-creation step and the embedded stack create the same topics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

# Inbound (the system consumes)
BORDER_ARRIVALS = "border.arrivals.v1"
CASEWORK_UPDATES = "casework.updates.v1"
ADMISSIONS_APPLICATIONS = "admissions.applications.v1"
LIAISON_FR_DECISIONS = "liaison.fr.decisions.v1"
TRANSFERS_MOVEMENTS = "transfers.movements.v1"
ENFORCEMENT_ILLEGAL_WORKING = "enforcement.illegal-working.v1"
OPS_CONTROL = "ops.control.v1"

# Outbound (the system publishes)
LIAISON_UK_RETURN_REQUESTS = "liaison.uk.return-requests.v1"
LIAISON_UK_ADMISSION_NOTICES = "liaison.uk.admission-notices.v1"
ENFORCEMENT_BANS = "enforcement.bans.v1"
OPS_BALANCE = "ops.balance.v1"
OPS_ALERTS = "ops.alerts.v1"
OPS_AUDIT = "ops.audit.v1"
OPS_DEAD_LETTERS = "ops.dead-letters.v1"

# Internal (one straight path: intake -> enforcement -> matching -> transfer/enforcement)
INTAKE_ACCEPTED = "internal.intake.accepted.v1"
INTAKE_PARTICULARS = "internal.intake.particulars.v1"
ENFORCEMENT_SCREENED = "internal.enforcement.screened.v1"
MATCHING_INSTRUCTIONS = "internal.matching.instructions.v1"

INBOUND_EVENT_TYPES: dict[str, frozenset[str]] = {
    BORDER_ARRIVALS: frozenset({"ArrivalRecorded"}),
    CASEWORK_UPDATES: frozenset({
        "AsylumClaimDecided", "ProtectionClaimLodged", "ProtectionClaimResolved",
        "LegalChallengeFiled", "LegalChallengeDecided", "AgeAssessed",
        "PersonDetained", "PersonAbsconded",
    }),
    ADMISSIONS_APPLICATIONS: frozenset({
        "ExpressionOfInterestSubmitted", "ApplicationVetted", "ApplicationWithdrawn",
    }),
    LIAISON_FR_DECISIONS: frozenset({"ReturnRequestAnswered"}),
    TRANSFERS_MOVEMENTS: frozenset({"ReturnExecuted", "ReturnFailed", "AdmissionArrived"}),
    ENFORCEMENT_ILLEGAL_WORKING: frozenset({"IllegalWorkingEncounter"}),
    OPS_CONTROL: frozenset({"WeeklyCapSet", "AdmissionsPaused", "AdmissionsResumed", "ClockTick"}),
}
INBOUND_TOPICS: tuple[str, ...] = tuple(INBOUND_EVENT_TYPES)

FOREVER = -1
# Names and dates of birth are kept this long after landing: a return may be requested only
# within 14 days of landing, so 30 days covers every request with room for late delivery.
PERSONAL_DATA_RETENTION_DAYS = 30
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int = FOREVER
    compacted: bool = False
    internal: bool = False
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        cfg["cleanup.policy"] = "compact" if self.compacted else "delete"
        cfg.update(self.config)
        return cfg


# Inbound topics are keyed by subject, so several partitions keep per-subject order.
# Internal topics have ONE partition: matching's consumption order is the order that makes
# pairing reproducible, and the whole house reads one totally ordered log. They are kept
# forever: a service that finds its Redis empty rebuilds by replaying them.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(BORDER_ARRIVALS, 6),
    TopicSpec(CASEWORK_UPDATES, 6),
    TopicSpec(ADMISSIONS_APPLICATIONS, 6),
    TopicSpec(LIAISON_FR_DECISIONS, 3),
    TopicSpec(TRANSFERS_MOVEMENTS, 3),
    TopicSpec(ENFORCEMENT_ILLEGAL_WORKING, 3),
    TopicSpec(OPS_CONTROL, 1),
    TopicSpec(LIAISON_UK_RETURN_REQUESTS, 3),
    TopicSpec(LIAISON_UK_ADMISSION_NOTICES, 3),
    TopicSpec(ENFORCEMENT_BANS, 3, compacted=True),
    TopicSpec(OPS_BALANCE, 1),
    TopicSpec(OPS_ALERTS, 1, retention_ms=90 * 24 * 3600 * 1000),
    TopicSpec(OPS_AUDIT, 3),
    TopicSpec(OPS_DEAD_LETTERS, 1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(INTAKE_ACCEPTED, 1, internal=True),
    # An arrival's particulars, by arrival_id, for transfer alone; they expire with the personal
    # data retention period (README, "Personal data"): this topic is not kept forever.
    TopicSpec(INTAKE_PARTICULARS, 1, retention_ms=PERSONAL_DATA_RETENTION_DAYS * 24 * 3600 * 1000, internal=True),
    TopicSpec(ENFORCEMENT_SCREENED, 1, internal=True),
    TopicSpec(MATCHING_INSTRUCTIONS, 1, internal=True),
)
TOPICS_BY_NAME = {t.name: t for t in TOPICS}


def sharded_partitions(intake_shards: int = 1, enforcement_shards: int = 1) -> dict[str, int]:
    """The topics that intake and enforcement in shards widen: each shard writes its own
    partition of its output (shared/shards.py)."""
    return {name: n for name, n in ((INTAKE_ACCEPTED, intake_shards), (ENFORCEMENT_SCREENED, enforcement_shards))
            if n > 1}


def catalogue(intake_shards: int = 1, enforcement_shards: int = 1) -> tuple[TopicSpec, ...]:
    """The topics for a deployment with intake and enforcement in shards; everything but their
    outputs as TOPICS."""
    wider = sharded_partitions(intake_shards, enforcement_shards)
    if not wider:
        return TOPICS
    return tuple(replace(t, partitions=wider[t.name]) if t.name in wider else t for t in TOPICS)


def topics_json() -> str:
    return json.dumps(
        [{"name": t.name, "partitions": t.partitions, "config": t.kafka_config()} for t in TOPICS],
        indent=2,
    ) + "\n"


if __name__ == "__main__":
    print(topics_json(), end="")
