"""No personal data in the services' logs or on ops.* (contract: "No personal data (names, dates
of birth, biometric ids) appears on any ops.* topic except ops.dead-letters.v1").

The house runs with particulars that cannot occur by chance, through every path that logs or
publishes to ops.*: eligible and ineligible arrivals, pairing, a request answered and executed,
an admission, a re-entry and its ban, an applicant who crossed by boat, an illegal-working
match, and bad input (schema, signature) that carries particulars into a dead letter. Then every
line of every service's log, and every record (key, headers, value) on every ops.* topic except
the restricted dead letters, is searched for each name, date of birth and biometric id.
"""
from __future__ import annotations

import base64
from datetime import date

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import topics as T
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, MINUTE, T0

pytestmark = pytest.mark.integration

OPS_SCANNED = tuple(s.name for s in T.TOPICS if s.name.startswith("ops.") and s.name != T.OPS_DEAD_LETTERS)

PEOPLE = {  # person seed -> particulars
    "pd-returned": ("Quillfeather-Ondaatje", "Marisol Ysolde", "1987-03-14"),
    "pd-minor": ("Vantongeren-Achebe", "Tobiah", "2011-08-29"),
    "pd-waiting": ("Oyelaran-Szymborska", "Ileana Perpetua", "1979-12-02"),
    "pd-badinput": ("Harkonnen-Wiredu", "Celestine", "1969-06-21"),
}
APPLICANT_DOBS = {"P-pd-1": "1993-11-27", "P-pd-2": "1990-02-17", "P-pd-boat": "1984-07-09"}


def arrival(arrival_id: str, at, person: str, **kw) -> dict:
    family, given, dob = PEOPLE[person]
    return {**f.arrival(arrival_id, at, person=person, **kw), "family_name": family, "given_names": given,
            "date_of_birth": dob}


def needles() -> dict[str, str]:
    """Each known particular, and the forms a careless log line would give it."""
    found: dict[str, str] = {}
    for person, (family, given, dob) in PEOPLE.items():
        found[family] = f"family name of {person}"
        for name in given.split():
            found[name] = f"given name of {person}"
        found.update(_date_forms(dob, person))
        found[f.bio(person)] = f"biometric id of {person}"
        found[f.bio(person)[:16]] = f"biometric id of {person} (cut)"
    for app, dob in APPLICANT_DOBS.items():
        found.update(_date_forms(dob, app))
        found[f.bio(app)] = f"biometric id of {app}"
        found[f.bio(app)[:16]] = f"biometric id of {app} (cut)"
    found[f.bio("pd-worker")] = "biometric id of the illegal worker"
    return found


def _date_forms(iso: str, whose: str) -> dict[str, str]:
    d = date.fromisoformat(iso)
    return {iso: f"date of birth of {whose}", repr(d): f"date of birth of {whose} (repr)",
            d.strftime("%d/%m/%Y"): f"date of birth of {whose} (dd/mm/yyyy)"}


async def read_all(bootstrap: str, topics: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """Every record on the topics, up to their current ends: (topic, key + headers + value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(T.TOPICS_BY_NAME[t].partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[str, bytes]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            got = await consumer.getmany(*remaining, timeout_ms=1000)
            for recs in got.values():
                for rec in recs:
                    blob = (rec.key or b"") + b"".join(k.encode() + (v or b"") for k, v in (rec.headers or ()))
                    records.append((rec.topic, blob + (rec.value or b"")))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def returned(client, observer, arrival_id: str, app: str, at, person: str) -> str:
    await client.publish(T.BORDER_ARRIVALS, arrival(arrival_id, at, person))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=arrival_id)
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at, dob=APPLICANT_DOBS[app]))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=arrival_id)
    rid = req["request_id"]
    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid, at + DAY))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref=rid, decision="accepted")
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rid, at + 2 * DAY))
    await observer.wait_for(T.LIAISON_UK_ADMISSION_NOTICES, "AdmissionOffered", application_id=app)
    await client.publish(T.TRANSFERS_MOVEMENTS, f.admission_arrived(app, at + 3 * DAY))
    return rid


async def test_no_name_date_of_birth_or_biometric_in_logs_or_ops_topics(house, client, observer):
    # the particulars really travel: the French liaison gets them, so the scan below means something
    await returned(client, observer, "A-pd-1", "P-pd-1", T0, "pd-returned")
    [req] = observer.events(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id="A-pd-1")
    assert req["family_name"] == PEOPLE["pd-returned"][0]

    # ineligible (claimed minor), and one who waits unpaired
    await client.publish(T.BORDER_ARRIVALS, arrival("A-pd-minor", T0 + 3 * DAY, "pd-minor", claimed_minor=True))
    await client.publish(T.BORDER_ARRIVALS, arrival("A-pd-wait", T0 + 3 * DAY + MINUTE, "pd-waiting"))
    # the returned person comes back: a re-entry, a ban, an alert
    await client.publish(T.BORDER_ARRIVALS, arrival("A-pd-again", T0 + 4 * DAY, "pd-returned", asylum_claimed=True))
    await observer.wait_for(T.ENFORCEMENT_BANS, "AsylumBanRecorded")
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="reentry_detected", subject_ref="A-pd-again")
    # an applicant who crossed by boat, and an illegal worker who is the waiting arrival
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P-pd-boat", T0 + 5 * DAY, dob=APPLICANT_DOBS["P-pd-boat"]))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P-pd-boat", T0 + 5 * DAY, person="pd-minor"))
    await observer.wait_for(T.OPS_AUDIT, "Decision", subject_ref="P-pd-boat", decision="refused_admission")
    await client.publish(T.ENFORCEMENT_ILLEGAL_WORKING, f.illegal_working("R-pd-1", T0 + 5 * DAY + HOUR, "pd-waiting"))
    await client.publish(T.ENFORCEMENT_ILLEGAL_WORKING, f.illegal_working("R-pd-2", T0 + 5 * DAY + HOUR, "pd-worker"))
    # bad input that carries particulars: a schema error, a bad signature
    bad = arrival("A-pd-bad", T0 + 6 * DAY, "pd-badinput")
    bad["claimed_minor"] = "perhaps"
    await client.publish(T.BORDER_ARRIVALS, bad)
    forged = arrival("A-pd-forged", T0 + 6 * DAY, "pd-badinput")
    await client.publish(T.BORDER_ARRIVALS, forged, headers={"x-signature": "0" * 64})
    await observer.wait_for(T.OPS_DEAD_LETTERS, "DeadLetter", count=2)
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="dead_letter", count=2)
    # a second applicant pairs with the waiting arrival: more decisions, a request, the balance
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi("P-pd-2", T0 + 6 * DAY, dob=APPLICANT_DOBS["P-pd-2"]))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted("P-pd-2", T0 + 6 * DAY))
    await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", count=2)
    await observer.quiet(2.0)

    # the dead letters are restricted and carry the raw values (which is why they are not scanned)
    letters = observer.events(T.OPS_DEAD_LETTERS, "DeadLetter")
    assert any(PEOPLE["pd-badinput"][0].encode() in base64.b64decode(d["raw_value_b64"]) for d in letters)

    wanted = needles()
    leaks = []
    records = await read_all(house.bootstrap, OPS_SCANNED)
    assert {topic for topic, _ in records} >= {T.OPS_AUDIT, T.OPS_ALERTS, T.OPS_BALANCE}
    for topic, blob in records:
        text = blob.decode("utf-8", "replace")
        leaks += [f"{topic}: {what}" for needle, what in wanted.items() if needle in text]
    for service in house.services:
        log = house.stack.log_path(service).read_text(encoding="utf-8", errors="replace")
        assert log.strip(), f"{service} wrote no log at all"
        for n, line in enumerate(log.splitlines(), 1):
            leaks += [f"{service}.log:{n}: {what}" for needle, what in wanted.items() if needle in line]
    assert leaks == [], "personal data leaked:\n" + "\n".join(sorted(set(leaks)))

