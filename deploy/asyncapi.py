"""Each service's AsyncAPI 3.0 document, generated from its FastStream app: `make docs`.

FastStream describes the channels from the declared subscribers and publishers. Our
subscribers take raw bytes (signatures are checked on them), so FastStream knows no payload
for them; each subscribed channel's payload is then filled in from the topic catalogue
(`shared/events/catalogue.py`): the contract's event types on the inbound topics, our
envelopes on the internal ones. Written to docs/asyncapi/<service>.json; `--check` exits 1
when a committed document differs from a fresh one.
"""
from __future__ import annotations

import argparse
import json
import sys

from faststream.specification import AsyncAPI

from deploy.embedded import DEV_KEYS_FILE, REPO_ROOT, SERVICES
from shared.events.catalogue import adapter
from shared.settings import Settings

DOCS = REPO_ROOT / "docs" / "asyncapi"


def _runner(name: str):
    settings = Settings(signing_keys_file=str(DEV_KEYS_FILE))
    module = __import__(f"services.{name}.app", fromlist=["build"])
    return module.build(settings)


def document(name: str) -> dict:
    runner = _runner(name)
    spec = AsyncAPI(runner.broker, title=f"oioo {name}", version="1.0.0", schema_version="3.0.0",
                    description=f"The {name} service of the UK-France 'one in, one out' exchange. "
                                "Wire contract: shared/contract/v1.md.").to_specification()
    doc = json.loads(spec.to_json())
    doc["servers"] = {"kafka": {"host": "kafka:9093", "protocol": "kafka-secure",
                                "description": "SASL/SCRAM-SHA-512 over TLS (see the README's Security section)"}}
    for channel in doc["channels"].values():
        channel["servers"] = [{"$ref": "#/servers/kafka"}]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    messages = doc["components"].get("messages", {})
    for channel in doc["channels"].values():
        topic = channel["address"]
        for ref in channel.get("messages", {}).values():
            ref_name = ref["$ref"].rsplit("/", 1)[-1]
            if not ref_name.endswith("SubscribeMessage"):
                continue
            schema = adapter(topic).json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas[def_name] = definition
            payload_name = f"{topic}:Payload"
            schemas[payload_name] = schema
            messages[ref_name]["payload"] = {"$ref": f"#/components/schemas/{payload_name}"}
    _drop_unreferenced(doc, schemas)
    return doc


def _drop_unreferenced(doc: dict, schemas: dict) -> None:
    """FastStream's own payloads for the raw-bytes subscribers are replaced above: drop them."""
    while True:
        text = json.dumps(doc)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def render(name: str) -> str:
    return json.dumps(document(name), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed document is stale")
    args = parser.parse_args(argv)
    stale = []
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        path = DOCS / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO_ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print("stale AsyncAPI documents (run `make docs`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
