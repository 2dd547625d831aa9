"""The particulars transfer keeps for France, and only for as long as a request may need them.

Intake sends each arrival's names, date of birth and landing details to transfer alone
(internal.intake.particulars.v1); enforcement and matching never see them. Transfer keeps them
by arrival_id until `landed_at + retention` (event time), then removes them from its state;
the topic itself expires them by its retention.ms. A RequestReturn whose particulars have not
been read yet (the two topics are consumed side by side) waits for them.
"""
from __future__ import annotations

import heapq
from datetime import datetime

from services.transfer import rules
from shared.events.internal import ArrivalParticulars, Instruction, Particulars

KEY, WAITING = "particulars:", "waiting:"


class ParticularsBook:
    def __init__(self, retention_days: int):
        self.retention_days = retention_days
        self.kept: dict[str, dict] = {}  # arrival_id -> particulars (+ "expires")
        self.waiting: dict[str, list[dict]] = {}  # arrival_id -> RequestReturn instructions
        self._expiry: list[tuple[datetime, str]] = []

    def restore(self, records: dict[str, dict]) -> None:
        self.kept = {k.removeprefix(KEY): v for k, v in records.items() if k.startswith(KEY)}
        self.waiting = {k.removeprefix(WAITING): v["instructions"] for k, v in records.items() if k.startswith(WAITING)}
        self._expiry = [(datetime.fromisoformat(v["expires"]), a) for a, v in self.kept.items()]
        heapq.heapify(self._expiry)

    def keep(self, p: ArrivalParticulars, now: datetime) -> tuple[str, dict] | None:
        """The record to store, or None when its retention is already over."""
        expires = rules.particulars_expire(datetime.fromisoformat(p.landed_at), self.retention_days)
        if expires <= now:
            return None
        record = {**p.model_dump(exclude={"arrival_id", "occurred_at"}), "expires": expires.isoformat()}
        self.kept[p.arrival_id] = record
        heapq.heappush(self._expiry, (expires, p.arrival_id))
        return KEY + p.arrival_id, record

    def of(self, arrival_id: str) -> Particulars | None:
        record = self.kept.get(arrival_id)
        return None if record is None else Particulars(**{k: v for k, v in record.items() if k != "expires"})

    def wait(self, instruction: Instruction) -> tuple[str, dict]:
        waiting = self.waiting.setdefault(instruction.arrival_id, [])
        waiting.append(instruction.model_dump())
        return WAITING + instruction.arrival_id, {"instructions": waiting}

    def release(self, arrival_id: str) -> list[Instruction]:
        return [Instruction.model_validate(i) for i in self.waiting.pop(arrival_id, [])]

    def expired(self, now: datetime) -> list[str]:
        """The arrivals whose particulars are past their retention at `now`: forgotten here."""
        gone = []
        while self._expiry and self._expiry[0][0] <= now:
            expires, arrival_id = heapq.heappop(self._expiry)
            record = self.kept.get(arrival_id)
            if record is not None and record["expires"] == expires.isoformat():
                del self.kept[arrival_id]
                gone.append(arrival_id)
        return gone
