"""Stored records handed over as a restart's load hands them to a service: in chunks, in any
order, and some twice (Redis's HSCAN may return a field again)."""
from __future__ import annotations

import random

from shared.state import Restoring, Snapshot


def in_any_chunks(records: dict[str, dict], rnd: random.Random) -> list[dict[str, dict]]:
    keys = list(records)
    rnd.shuffle(keys)
    keys += [k for k in keys if rnd.random() < 0.1]  # some again, later
    chunks: list[dict[str, dict]] = []
    while keys:
        size = rnd.randint(1, max(1, len(keys)))
        chunks.append({k: records[k] for k in keys[:size]})
        keys = keys[size:]
    return chunks


def restore_in_chunks(restoring: Restoring, snapshot: Snapshot, rnd: random.Random) -> None:
    """What the runtime does with a service's `restoring()` while the store loads."""
    for chunk in in_any_chunks(dict(snapshot.records), rnd):
        restoring.add(chunk)
    restoring.finish(snapshot)
