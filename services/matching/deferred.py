"""Events about a subject matching does not know yet (casework before its arrival, vetting
before its application): kept with what enforcement said of them, replayed when the subject
arrives, and audited as ignored (unknown_subject) once 14 days of event time have passed."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from services.matching import rules
from shared.events import inbound as ev
from shared.events.internal import Screening

if TYPE_CHECKING:
    from services.matching.exchange import Exchange


def defer(x: "Exchange", key: str, subject: str, e: ev.Event, s: Screening, reason: str) -> None:
    """Kept, with what enforcement said of it, until its subject arrives: at most 14 days."""
    expires = rules.deferral_expires(e.occurred_at)
    if expires <= x.now:
        x.decide(subject, "ignored", ["unknown_subject"])
        return
    x.repo.pending.setdefault(key, []).append({"event": e.model_dump(mode="json"), "screening": s.model_dump()})
    x.repo.touch(f"pending:{key}")
    x.deadlines.at(expires, "expire", key)
    x.decide(subject, "deferred", [reason])


def replay_deferred(x: "Exchange", key: str) -> None:
    items = x.repo.pending.pop(key, [])
    if not items:
        return
    x.repo.touch(f"pending:{key}")
    quiet, x.quiet = x.quiet, key.startswith("a:")  # the arrival's first assessment speaks for them
    try:
        for item in items:
            x.dispatch(ev.ANY_IN_HOUSE.validate_python(item["event"]), Screening(**item.get("screening", {})))
    finally:
        x.quiet = quiet


def expire_deferred(x: "Exchange", key: str, due: datetime) -> None:
    items = x.repo.pending.get(key)
    if not items:
        return
    keep = []
    for item in items:
        if rules.deferral_expires(datetime.fromisoformat(item["event"]["occurred_at"])) <= x.now:
            x.decide(key.split(":", 1)[1], "ignored", ["unknown_subject"])
        else:
            keep.append(item)
    if keep:
        x.repo.pending[key] = keep
    else:
        del x.repo.pending[key]
    x.repo.touch(f"pending:{key}")
