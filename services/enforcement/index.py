"""The biometric index as enforcement holds it in memory: compact, for every person ever seen.

A biometric (64 hex chars) is held as its 32 raw bytes, once: the key of `persons`, and the
very same bytes object is the value of `arrivals` (arrival id -> biometric). Most people are
known by one arrival and nothing else: their entry in `persons` is that arrival id alone (the
same string object as the key of `arrivals`), unpacked into a `Person` when asked for. What
a restore builds from the stored records is the same compact form as what a replay builds.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

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
    def from_records(cls, records: Mapping[str, dict]) -> "BiometricIndex":
        """The index from the stored "person:" and "arrival:" records, all at once."""
        rebuilt = Rebuild()
        rebuilt.add(records)
        return rebuilt.done()


class Rebuild:
    """The index from the stored "person:" and "arrival:" records, handed over in chunks and in
    any order (a record twice is the same record twice): a restart never holds the stored
    records beside the index built from them.

    An arrival record names its person by key (person:<sha256 of the biometric>): one whose
    person is not read yet waits for it. Every string kept is a new one, none of the stored
    records': they are dropped once read, and a string of theirs kept alive would keep its
    whole block of memory alive. An arrival id is one string, wherever the index holds it."""

    def __init__(self) -> None:
        self.index = BiometricIndex()
        self._biometrics: dict[bytes | str, bytes] = {}  # a person key's digest -> the biometric
        self._ids: dict[str, str] = {}  # arrival id -> the one string the index holds for it
        self._waiting: list[tuple[str, bytes | str]] = []  # (arrival id, person) read before the person

    def add(self, records: Mapping[str, dict]) -> None:
        for key in records:
            if key.startswith(PERSON):
                person = records[key]
                biometric = bytes.fromhex(person["biometric_id"])
                self._biometrics[_digest(key)] = biometric
                self.index.put(biometric, self._anew(Person.from_record(person)))
            elif key.startswith(ARRIVAL):
                arrival_id = self._id(key[len(ARRIVAL):])
                owner = _digest(records[key]["person"])
                biometric = self._biometrics.get(owner)
                if biometric is None:
                    self._waiting.append((arrival_id, owner))
                else:
                    self.index.add_arrival(arrival_id, biometric)

    def done(self) -> BiometricIndex:
        missing = 0
        for arrival_id, owner in self._waiting:
            biometric = self._biometrics.get(owner)
            if biometric is None:  # never written so: a person and its arrival go in one commit
                missing += 1
            else:
                self.index.add_arrival(arrival_id, biometric)
        if missing:
            log.warning("%d stored arrival(s) name no stored person; left out of the index", missing)
        self._biometrics, self._ids, self._waiting = {}, {}, []
        return self.index

    def _id(self, arrival_id: str) -> str:
        held = self._ids.get(arrival_id)
        if held is None:
            held = _new(arrival_id)
            self._ids[held] = held
        return held

    def _anew(self, person: Person) -> Person:
        """The same person holding none of the stored record's strings."""
        arrivals, applications, reports, banned, ban_instruction = person
        return Person(tuple(map(self._id, arrivals)), tuple(map(_new, applications)),
                      tuple(map(_new, reports)), _new(banned), _new(ban_instruction))


def _digest(person_key: str) -> bytes | str:
    """A person key as its 32 bytes of digest (half the memory of its text), or as it is when
    it is not one (the person is found the same way from its arrivals)."""
    if person_key.startswith(PERSON):
        try:
            digest = bytes.fromhex(person_key[len(PERSON):])
        except ValueError:
            return person_key
        if len(digest) == 32:
            return digest
    return person_key


def _new(text: str | None) -> str | None:
    """A copy of a string that is not the same object (str() and slicing return the original)."""
    return None if text is None else text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
