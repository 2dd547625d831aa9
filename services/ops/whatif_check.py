"""The baseline check: replayed under the settings in force, the recorded input must give every
Decision (matching's and transfer's), ReturnRequested, ReturnRequestWithdrawn and
AdmissionOffered the system published, with the same ids and the same contents.

Events are compared as parsed JSON objects, field by field, matched on event_id. Enforcement's
Decisions (bans) come from another input and are not matching's or transfer's to reproduce.
A ReturnRequested whose particulars are no longer in the history (kept 30 days) is compared
on every field but the particulars, and counted apart.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared import topics as T
from shared.timeutil import iso_week

PRODUCERS = frozenset({"oioo-matching", "oioo-transfer"})
LIAISON_EVENTS = frozenset({"ReturnRequested", "ReturnRequestWithdrawn", "AdmissionOffered"})
CHECKED_TOPICS = (T.OPS_AUDIT, T.LIAISON_UK_RETURN_REQUESTS, T.LIAISON_UK_ADMISSION_NOTICES)


@dataclass(frozen=True)
class Changed:
    event_id: str
    event_type: str
    fields: tuple[str, ...]


@dataclass
class Check:
    compared: int = 0
    without_particulars: int = 0  # ReturnRequested compared without the personal fields
    missing: list[tuple[str, str]] = field(default_factory=list)  # (event_id, event_type) published, not replayed
    extra: list[tuple[str, str]] = field(default_factory=list)  # replayed, never published
    changed: list[Changed] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)


def week_of(doc: dict) -> str | None:
    try:
        return iso_week(datetime.fromisoformat(str(doc.get("occurred_at")).replace("Z", "+00:00")))
    except ValueError:
        return None


def in_range(week: str | None, first: str | None, last: str | None) -> bool:
    if week is None:
        return first is None and last is None
    return (first is None or week >= first) and (last is None or week <= last)


def checked(topic: str, doc: dict | None) -> bool:
    if not isinstance(doc, dict) or topic not in CHECKED_TOPICS:
        return False
    if topic == T.OPS_AUDIT:
        return doc.get("event_type") == "Decision" and doc.get("producer") in PRODUCERS
    return doc.get("event_type") in LIAISON_EVENTS


def _parse(value: bytes) -> dict | None:
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _index(events: Iterable[tuple[str, bytes]], first: str | None, last: str | None,
           conflicts: list[Changed] | None = None) -> dict[str, tuple[str, dict]]:
    out: dict[str, tuple[str, dict]] = {}
    for topic, value in events:
        doc = _parse(value)
        if not checked(topic, doc) or not in_range(week_of(doc), first, last):
            continue
        event_id = str(doc.get("event_id"))
        if event_id in out and conflicts is not None and out[event_id] != (topic, doc):
            # published twice (at-least-once) must mean the same content twice
            conflicts.append(Changed(event_id, str(doc.get("event_type")), _differing(out[event_id], (topic, doc))))
        out.setdefault(event_id, (topic, doc))
    return out


def _differing(a: tuple[str, dict], b: tuple[str, dict]) -> tuple[str, ...]:
    names = sorted(n for n in set(a[1]) | set(b[1]) if a[1].get(n, ...) != b[1].get(n, ...))
    return tuple((["(topic)"] if a[0] != b[0] else []) + names)


def _without(doc: dict, names: Iterable[str]) -> dict:
    return {k: v for k, v in doc.items() if k not in names}


def check(published: Iterable[tuple[str, bytes]], replayed: Iterable[tuple[str, bytes]],
          first: str | None = None, last: str | None = None, without_particulars: set[str] = frozenset(),
          personal: tuple[str, ...] = ()) -> Check:
    """Published (topic, value) pairs against replayed ones, in the weeks first..last; the
    events in `without_particulars` are compared without the `personal` fields."""
    result = Check()
    recorded = _index(published, first, last, result.changed)
    again = _index(replayed, first, last)
    result.compared = len(recorded)
    for event_id, (topic, doc) in recorded.items():
        if event_id not in again:
            result.missing.append((event_id, str(doc.get("event_type"))))
            continue
        theirs, ours = (topic, doc), again[event_id]
        if event_id in without_particulars:
            result.without_particulars += 1
            theirs, ours = (topic, _without(doc, personal)), (ours[0], _without(ours[1], personal))
        if ours != theirs:
            result.changed.append(Changed(event_id, str(doc.get("event_type")), _differing(theirs, ours)))
    result.extra = [(i, str(d.get("event_type"))) for i, (_, d) in again.items() if i not in recorded]
    return result
