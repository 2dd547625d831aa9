"""Fault points a test can arm: the process kills itself (SIGKILL) at a named moment.

Armed by env OIOO_FAULTS, e.g. "after_commit=0.05,after_publish=0.05": at each pass through a
named point the process dies with that probability. Unarmed (the default) a point costs one
dictionary lookup. The points are the moments a crash is most dangerous: between the Redis
commit and the publish, and between the publish and the offset commit.
"""
from __future__ import annotations

import os
import random
import signal

POINTS = ("before_commit", "after_commit", "after_publish")


def _armed() -> dict[str, float]:
    out = {}
    for part in filter(None, (os.environ.get("OIOO_FAULTS") or "").split(",")):
        name, _, p = part.partition("=")
        if name.strip() in POINTS:
            out[name.strip()] = float(p or 1.0)
    return out


_ARMED = _armed()
_rng = random.Random(os.environ.get("OIOO_FAULTS_SEED"))


def point(name: str) -> None:
    p = _ARMED.get(name)
    if p and _rng.random() < p:
        os.kill(os.getpid(), signal.SIGKILL)
