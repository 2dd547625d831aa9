"""Create the contract's and our internal topics on a real Kafka: compose's one-shot `topics` step.

Why a script rather than broker auto-creation: partition counts carry meaning (internal topics
have one partition, so every service reads one totally ordered log) and the bans topic must be
compacted. It reads deploy/topics.json (generated from shared.topics), waits for the broker,
creates what is missing, and fails if an existing topic has another partition count. With
INTAKE_SHARDS (ENFORCEMENT_SHARDS) set, the accepted (screened) events' topic has that many
partitions (shared/shards.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from deploy.embedded import ensure_topics, wait_for_kafka
from shared.security import check_production, kafka_client_options
from shared.settings import Settings
from shared.topics import sharded_partitions


def with_shards(specs: list[dict], intake_shards: int = 1, enforcement_shards: int = 1) -> list[dict]:
    """Intake and enforcement in shards write one partition of their output per shard
    (shared/shards.py)."""
    wider = sharded_partitions(intake_shards, enforcement_shards)
    return [{**spec, "partitions": wider[spec["name"]]} if spec["name"] in wider else spec for spec in specs]


async def run(bootstrap: str, specs: list[dict], wait: float, replication_factor: int) -> None:
    # SASL/TLS from the environment like every service (KAFKA_SECURITY_PROTOCOL, KAFKA_USERNAME, ...)
    settings = Settings.from_env()
    check_production(settings, redis=False)
    options = kafka_client_options(settings)
    await wait_for_kafka(bootstrap, timeout=wait, client_options=options)
    await ensure_topics(bootstrap, with_shards(specs, settings.intake_shards, settings.enforcement_shards),
                        replication_factor=replication_factor, config_fallback=False, client_options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.create_topics", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                        help="default: env KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--file", type=Path, default=Path(__file__).with_name("topics.json"))
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the broker")
    parser.add_argument("--replication-factor", type=int,
                        default=int(os.environ.get("TOPIC_REPLICATION_FACTOR", "1")))
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("no bootstrap servers: pass --bootstrap or set KAFKA_BOOTSTRAP_SERVERS")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    specs = json.loads(args.file.read_text(encoding="utf-8"))
    try:
        asyncio.run(run(args.bootstrap, specs, args.wait, args.replication_factor))
    except Exception as exc:  # noqa: BLE001 - one clear line for the operator
        print(f"topic creation failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(specs)} topics present on {args.bootstrap}: " + ", ".join(s["name"] for s in specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
