"""Deterministic ids: an outbound event published again after a crash carries the same id."""
from __future__ import annotations

import uuid

NAMESPACE = uuid.UUID("6f1c2a52-3e0b-4d4e-9b7e-0c1b5e6a7d10")


def derived_id(cause: str | uuid.UUID, *parts: object) -> uuid.UUID:
    """uuid5 of the causing event id and what was derived from it."""
    name = "/".join([str(cause), *(str(p) for p in parts)])
    return uuid.uuid5(NAMESPACE, name)
