"""The biometric index as enforcement holds it in memory: compact, for every person ever seen.

A biometric (64 hex chars) is held as its 32 raw bytes, once: the key of `persons`, and the
very same bytes object is the value of `arrivals` (arrival id -> biometric). Most people are
known by one arrival and nothing else: their entry in `persons` is that arrival id alone (the
same string object as the key of `arrivals`), unpacked into a `Person` when asked for. What
a restore builds from the stored records is the same compact form as what a replay builds.
"""
from __future__ import annotations

import logging

from services.enforcement.rules import NOBODY, Person

log = logging.getLogger("oioo.enforcement")
_ONLY_ARRIVALS = ((), (), None, None)  # a Person's fields after arrival_ids, when it has nothing else
PERSON, ARRIVAL = "person:", "arrival:"


class BiometricIndex:
    __slots__ = ("_persons", "_arrivals")

    def __init__(self) -> None:
        self._persons: dict[bytes, Person | str] = {}
        self._arrivals: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._persons)

    def __eq__(self, other: object) -> bool:
        """The same people under the same biometrics, and the same arrivals' owners."""
        if not isinstance(other, BiometricIndex):
            return NotImplemented
        return self._persons == other._persons and self._arrivals == other._arrivals

    __hash__ = None  # type: ignore[assignment]

    def person(self, biometric: bytes) -> Person:
        held = self._persons.get(biometric)
        if held is None:
            return NOBODY
        if held.__class__ is str:
            return Person((held,))
        return held

    def put(self, biometric: bytes, person: Person) -> None:
        ids = person.arrival_ids
        self._persons[biometric] = ids[0] if len(ids) == 1 and person[1:] == _ONLY_ARRIVALS else person

    def owner(self, arrival_id: str) -> bytes | None:
        """The biometric an arrival was first recorded under (None: not indexed yet)."""
        return self._arrivals.get(arrival_id)

    def add_arrival(self, arrival_id: str, biometric: bytes) -> None:
        self._arrivals[arrival_id] = biometric

    @classmethod
    def from_records(cls, records: dict[str, dict]) -> "BiometricIndex":
        """The index from the stored "person:" and "arrival:" records.

        Every string kept is a new one, none of the snapshot's: the snapshot is dropped once
        restored, and a string of it kept alive would keep its whole block of memory alive."""
        index = cls()
        by_key = {k: bytes.fromhex(r["biometric_id"]) for k, r in records.items() if k.startswith(PERSON)}
        kept: dict[str, str] = {}  # arrival id -> the one string the index holds for it
        missing = 0
        for key, record in records.items():
            if key.startswith(ARRIVAL):
                biometric = by_key.get(record["person"])
                if biometric is None:  # never written so: a person and its arrival go in one commit
                    missing += 1
                    continue
                arrival_id = key[len(ARRIVAL):]
                kept[arrival_id] = arrival_id
                index.add_arrival(arrival_id, biometric)
        if missing:
            log.warning("%d stored arrival(s) name no stored person; left out of the index", missing)
        for key, biometric in by_key.items():
            index.put(biometric, _anew(Person.from_record(records[key]), kept))
        return index


def _anew(person: Person, kept: dict[str, str]) -> Person:
    """The same person holding none of the snapshot's strings (its arrival ids: the index's own)."""
    arrivals, applications, reports, banned, ban_instruction = person
    return Person(tuple(kept.get(i) or _new(i) for i in arrivals), tuple(map(_new, applications)),
                  tuple(map(_new, reports)), _new(banned), _new(ban_instruction))


def _new(text: str | None) -> str | None:
    """A copy of a string that is not the same object (str() and slicing return the original)."""
    return None if text is None else text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
