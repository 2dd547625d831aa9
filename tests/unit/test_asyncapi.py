"""The AsyncAPI documents cover the whole wire contract and are not stale."""
from __future__ import annotations

import json
import re

import pytest

from deploy import asyncapi
from deploy.embedded import REPO_ROOT, SERVICES

CONTRACT = REPO_ROOT.parent / "shared" / "contract" / "v1.md"


def _contract_tables() -> dict[str, dict[str, set[str]]]:
    """{'inbound'|'outbound': {topic: {event types}}} from the contract's two topic tables."""
    if not CONTRACT.exists():
        pytest.skip(f"the contract is not beside the repository ({CONTRACT})")
    tables, current = {}, None
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("## Inbound topics"):
            current = tables.setdefault("inbound", {})
        elif line.startswith("## Outbound topics"):
            current = tables.setdefault("outbound", {})
        elif line.startswith("## "):
            current = None
        elif current is not None and (m := re.match(r"\| `([a-z0-9.\-]+)`(?: \([^)]*\))? \|", line)):
            types = line.rstrip(" |").rsplit("|", 1)[-1]
            current[m.group(1)] = {t.strip() for t in types.split(",")}
    assert tables.get("inbound") and tables.get("outbound"), "contract tables not found"
    return tables


def _schema_text(doc: dict, ref: str, seen: set[str] | None = None) -> str:
    """The JSON of one schema and of every schema it refers to."""
    seen = seen if seen is not None else set()
    if ref in seen:
        return ""
    seen.add(ref)
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    text = json.dumps(node)
    return text + "".join(_schema_text(doc, r, seen) for r in re.findall(r'"\$ref": "([^"]+)"', text))


def _channels(doc: dict, action: str) -> dict[str, str]:
    """topic -> the JSON text of its message's payload schema, for channels with that action."""
    out = {}
    for op in doc["operations"].values():
        if op["action"] != action:
            continue
        channel = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]
        text = "".join(_schema_text(doc, m["$ref"]) for m in channel["messages"].values())
        out[channel["address"]] = out.get(channel["address"], "") + text
    return out


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    return {name: json.loads((asyncapi.DOCS / f"{name}.json").read_text()) for name in SERVICES}


def test_every_inbound_topic_and_event_type_is_described_as_received_by_intake(documents):
    received = _channels(documents["intake"], "receive")
    for topic, types in _contract_tables()["inbound"].items():
        assert topic in received, f"{topic} missing from intake's AsyncAPI document"
        for event_type in types:
            assert f'"const": "{event_type}"' in received[topic], f"{event_type} on {topic} not described"


def test_every_outbound_topic_and_event_type_is_described_as_sent(documents):
    sent: dict[str, str] = {}
    for doc in documents.values():
        sent.update(_channels(doc, "send"))
    for topic, types in _contract_tables()["outbound"].items():
        assert topic in sent, f"{topic} is not sent by any service's AsyncAPI document"
        for event_type in types:
            assert f'"const": "{event_type}"' in sent[topic], f"{event_type} on {topic} not described"


def test_the_committed_documents_are_what_make_docs_writes():
    assert asyncapi.main(["--check"]) == 0, "docs/asyncapi is stale: run `make docs`"
