"""The recorded history a what-if replays: matching's input and what the system published.

Matching's input is `internal.enforcement.screened.v1` (one partition, so one ordered log; with
enforcement in shards, one partition a shard, merged back into one order here as matching did);
transfer's other input, the arrivals' particulars from intake (`internal.intake.particulars.v1`,
kept 30 days), is what its requests to France are written from; what was published is read from
ops.audit.v1 and the two liaison.uk topics, for the baseline check. From the running system (no
consumer group) or from a JSON-lines file written by `oioo export-history`: one record a line,
`{"topic", "partition", "offset", "key", "value"}`, the value as the text the broker holds, so
the check compares what was really published.

The file holds what the topics hold, the particulars sent to France included: it is written
readable by its owner only, and should be kept as the topics are.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from services.ops.topics_reader import read_all
from shared import topics as T
from shared.event_time import source_order
from shared.shards import MARK

INPUT_TOPIC = T.ENFORCEMENT_SCREENED
PARTICULARS_TOPIC = T.INTAKE_PARTICULARS
PUBLISHED_TOPICS = (T.OPS_AUDIT, T.LIAISON_UK_RETURN_REQUESTS, T.LIAISON_UK_ADMISSION_NOTICES)
HISTORY_TOPICS = (INPUT_TOPIC, PARTICULARS_TOPIC, *PUBLISHED_TOPICS)
# `make demo` leaves its history here (its stack is gone once it ends)
DEMO_HISTORY = Path(__file__).resolve().parents[2] / ".run" / "demo-history.jsonl"


class BadHistory(ValueError):
    """A history file that cannot be read (the message names the line, never its content)."""


@dataclass(frozen=True)
class Logged:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes

    def line(self) -> str:
        return json.dumps({"topic": self.topic, "partition": self.partition, "offset": self.offset,
                           "key": self.key, "value": self.value.decode("utf-8", "replace")},
                          separators=(",", ":"))


@dataclass
class History:
    inputs: list[Logged] = field(default_factory=list)  # screened, in log order
    particulars: list[Logged] = field(default_factory=list)  # intake -> transfer, in log order
    published: list[Logged] = field(default_factory=list)

    def add(self, rec: Logged) -> None:
        if rec.value == MARK:
            return  # a shard's progress, not an event (shared/shards.py)
        if rec.topic == INPUT_TOPIC:
            self.inputs.append(rec)
        elif rec.topic == PARTICULARS_TOPIC:
            self.particulars.append(rec)
        elif rec.topic in PUBLISHED_TOPICS:
            self.published.append(rec)

    def ordered(self) -> "History":
        if len({r.partition for r in self.inputs}) > 1:
            # enforcement in shards: each partition is its shard's share of one intake's order, and
            # matching merged them back into it (shared/shards.py); a flood's order exactly
            self.inputs.sort(key=lambda r: (source_order(r.value), r.partition, r.offset))
        else:
            self.inputs.sort(key=lambda r: (r.partition, r.offset))
        self.particulars.sort(key=lambda r: (r.partition, r.offset))
        self.published.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return self


async def read_history(bootstrap: str) -> History:
    """Everything on the history's topics now, from the running system."""
    history = History()
    for r in await read_all(bootstrap, HISTORY_TOPICS, timeout=300.0):
        history.add(Logged(r.topic, r.partition, r.offset, r.key, r.value))
    return history.ordered()


def write_history(path: Path, history: History) -> int:
    """JSON lines, input first; returns how many records were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for rec in (*history.inputs, *history.particulars, *history.published):
            f.write(rec.line() + "\n")
    return len(history.inputs) + len(history.particulars) + len(history.published)


def load_history(path: Path) -> History:
    history = History()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                history.add(Logged(str(d["topic"]), int(d["partition"]), int(d["offset"]), d.get("key"),
                                   str(d["value"]).encode("utf-8")))
            except (ValueError, KeyError, TypeError):
                raise BadHistory(f"{path}: line {n} is not a history record") from None
    return history.ordered()
