"""The biometric index as enforcement holds it in memory: compact, for every person ever seen.

A biometric (64 hex chars) is held as its 32 raw bytes, once: the key of `persons`, and the
very same bytes object is the value of `arrivals` (arrival id -> biometric). Most people are
known by one arrival and nothing else: their entry in `persons` is that arrival id alone (the
same string object as the key of `arrivals`), unpacked into a `Person` when asked for. What
a restore builds from the stored records is the same compact form as what a replay builds.
"""
from __future__ import annotations

import logging
from hashlib import sha256
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

    def __contains__(self, biometric: bytes) -> bool:
        return biometric in self._persons

    def claim(self, arrival_id: str, biometric: bytes) -> None:
        """The arrival's owner, unless it has one already."""
        self._arrivals.setdefault(arrival_id, biometric)

    def forget_arrival(self, arrival_id: str) -> None:
        self._arrivals.pop(arrival_id, None)

    def biometrics(self):
        return iter(self._persons)


class Rebuild:
    """The index from the stored "person:" and "arrival:" records, handed over in chunks and in
    any order (a record twice is the same record twice): a restart never holds the stored
    records beside the index built from them, nor a map of every person.

    A person's record lists its arrivals, and each arrival is claimed by the first person read
    that lists it. An arrival's own record names its owner by key (person:<sha256 of the
    biometric's text>) and decides: a claim it confirms costs nothing more; one it cannot
    confirm yet (its person not read) is checked once everything is in, and the few it
    contradicts (an arrival recorded again under another biometric) are settled then. Every
    string kept is a new one, none of the stored records': they are dropped once read, and a
    string of theirs kept alive would keep its whole block of memory alive."""

    def __init__(self) -> None:
        self.index = BiometricIndex()
        self._odd: dict[bytes | str, bytes] = {}  # person keys that are not their biometric's digest
        self._later: list[str] = []  # arrivals whose owner was not confirmed when read...
        self._owners = bytearray()  # ...and the digest of the owner each names, 32 bytes each
        self._later_odd: list[tuple[str, bytes | str]] = []  # the same, naming an odd key

    def add(self, records: Mapping[str, dict]) -> None:
        index = self.index
        for key in records:
            if key.startswith(PERSON):
                record = records[key]
                biometric = bytes.fromhex(record["biometric_id"])
                if biometric in index:
                    continue  # its record again (HSCAN): the strings already held stay the ones held
                person = _anew(Person.from_record(record))
                index.put(biometric, person)
                for arrival_id in person.arrival_ids:
                    index.claim(arrival_id, biometric)
                owner = _digest(key)
                if owner != _digest_of(biometric):
                    self._odd[owner] = biometric
            elif key.startswith(ARRIVAL):
                arrival_id = key[len(ARRIVAL):]
                owner = _digest(records[key]["person"])
                held = index.owner(arrival_id)
                if held is not None and _digest_of(held) == owner:
                    continue
                if type(owner) is bytes:
                    self._later.append(_new(arrival_id))
                    self._owners += owner
                else:
                    self._later_odd.append((_new(arrival_id), owner))

    def done(self) -> BiometricIndex:
        index = self.index
        contradicted = list(self._later_odd)
        for n, arrival_id in enumerate(self._later):
            owner = bytes(self._owners[32 * n:32 * n + 32])
            held = index.owner(arrival_id)
            if held is None or _digest_of(held) != owner:
                contradicted.append((arrival_id, owner))
        if contradicted:
            by_owner = dict(self._odd)
            wanted = {owner for _, owner in contradicted} - by_owner.keys()
            if wanted:
                for biometric in index.biometrics():
                    if (digest := _digest_of(biometric)) in wanted:
                        by_owner[digest] = biometric
            missing = 0
            for arrival_id, owner in contradicted:
                biometric = by_owner.get(owner)
                if biometric is None:  # never written so: a person and its arrival go in one commit
                    missing += 1
                    index.forget_arrival(arrival_id)
                else:
                    index.add_arrival(arrival_id, biometric)
            if missing:
                log.warning("%d stored arrival(s) name no stored person; left out of the index", missing)
        self._odd, self._later, self._owners, self._later_odd = {}, [], bytearray(), []
        return index


def _anew(person: Person) -> Person:
    """The same person holding none of the stored record's strings."""
    arrivals, applications, reports, banned, ban_instruction = person
    return Person(tuple(map(_new, arrivals)), tuple(map(_new, applications)), tuple(map(_new, reports)),
                  _new(banned), _new(ban_instruction))


def _digest(person_key: str) -> bytes | str:
    """A person key as its 32 bytes of digest, or as it is when it is not one."""
    if isinstance(person_key, str) and person_key.startswith(PERSON):
        try:
            digest = bytes.fromhex(person_key[len(PERSON):])
        except ValueError:
            return person_key
        if len(digest) == 32:
            return digest
    return person_key


def _digest_of(biometric: bytes) -> bytes:
    """The digest a person's key names (rules.person_key: of the biometric's lowercase text)."""
    return sha256(biometric.hex().encode("ascii")).digest()


def _new(text: str | None) -> str | None:
    """A copy of a string that is not the same object (str() and slicing return the original)."""
    return None if text is None else text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
