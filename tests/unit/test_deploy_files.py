"""The deployment files agree with the code they describe."""
from __future__ import annotations

import json
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
