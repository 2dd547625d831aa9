"""`oioo explain` on Decisions shaped as matching and transfer publish them (stable ids)."""
from __future__ import annotations

import random

from services.ops.explain import Audit, Entry, causal_rank, lines, readable, summary
from shared.ids import derived_id

RULE = "oioo-rules-1.0"


class Log:
    """Decisions as the services derive them: matching's named by the cause and what they are
    about, transfer's by the instruction matching gave it."""

    def __init__(self):
        self.entries: list[Entry] = []
        self.offset = 0

    def cause(self, at: str, *effects: tuple) -> str:
        cause = f"cause-{len(self.entries)}-{at}"
        for subject, decision, reasons, by in effects:
            eid = derived_id(cause, "decision", subject, decision)
            if by == "transfer":
                eid = derived_id(derived_id(cause, "instruction", subject), "decision")
            self.offset += 1
            self.entries.append(Entry({"event_type": "Decision", "event_id": str(eid), "occurred_at": at,
                                       "producer": "oioo-matching" if by == "m" else f"oioo-{by}", "subject_ref": subject, "decision": decision,
                                       "reasons": reasons, "rule_version": RULE, "caused_by": cause},
                                      partition=hash(subject) % 3, offset=self.offset))
        return cause

    def request(self, cause: str, arrival: str) -> str:
        return str(derived_id(cause, "request", arrival))


def refused_and_repaired() -> tuple[Log, str, str]:
    log = Log()
    log.cause("2025-09-01T09:00:00+00:00", ("A1", "blocked", ["asylum_claim_undecided"], "m"))
    log.cause("2025-09-01T10:00:00+00:00", ("P1", "blocked", ["awaiting_vetting"], "m"))
    log.cause("2025-09-01T10:00:00+00:00", ("P1", "eligible", ["vetted_clear"], "m"))
    c = "cause-3-2025-09-02T09:00:00+00:00"
    r1 = str(derived_id(c, "request", "A1"))
    assert log.cause("2025-09-02T09:00:00+00:00",
                     ("A1", "eligible", ["no_open_blocker"], "m"),
                     ("A1", "paired", ["oldest_landed_at_first", "within_weekly_cap"], "m"),
                     ("P1", "paired", ["oldest_application_first", f"request_{r1}"], "m"),
                     (r1, "requested", ["pair_formed"], "transfer")) == c
    log.cause("2025-09-03T09:00:00+00:00", ("A2", "eligible", ["no_open_blocker"], "m"))
    c2 = f"cause-{len(log.entries)}-2025-09-04T09:00:00+00:00"
    r2 = str(derived_id(c2, "request", "A2"))
    log.cause("2025-09-04T09:00:00+00:00",
              (r1, "refused", ["france_refused"], "m"),
              ("A1", "ineligible", ["france_refused"], "m"),
              ("P1", "requeued", ["pair_refused"], "m"),
              ("A2", "paired", ["oldest_landed_at_first"], "m"),
              ("P1", "paired", ["back_at_head_after_broken_pair", f"request_{r2}"], "m"),
              (r2, "requested", ["pair_formed"], "transfer"))
    return log, r1, r2


def test_an_arrival_is_explained_with_its_request_and_its_seat_in_decision_order():
    log, r1, r2 = refused_and_repaired()
    shuffled = log.entries[:]
    random.Random(7).shuffle(shuffled)  # the topic's partitions interleave in any order
    chain = Audit(shuffled).explain("A1")
    assert (chain.kind, chain.arrivals, chain.requests, chain.applications, chain.see_also) == (
        "arrival", ["A1"], [r1], ["P1"], [r2])
    assert [(e.subject, e.doc["decision"]) for e in chain.entries] == [
        ("A1", "blocked"), ("P1", "blocked"), ("P1", "eligible"), ("A1", "eligible"), ("A1", "paired"),
        ("P1", "paired"), (r1, "requested"), (r1, "refused"), ("A1", "ineligible"), ("P1", "requeued"),
        ("P1", "paired"),
    ]


def test_a_request_links_to_its_case_without_the_request_topic_and_a_seat_to_both_cases():
    log, r1, r2 = refused_and_repaired()
    audit = Audit(log.entries)
    assert (audit.explain(r2).kind, audit.explain(r2).arrivals, audit.explain(r2).applications) == (
        "request", ["A2"], ["P1"])
    seat = audit.explain("P1")
    assert (seat.kind, seat.requests, seat.arrivals) == ("application", [r1, r2], ["A1", "A2"])
    assert any("A2" in s and r2 in s for s in summary(seat))


def test_the_request_topic_links_a_case_whose_request_id_is_not_derivable():
    log = Log()
    log.cause("2025-09-02T09:00:00+00:00", ("A1", "paired", ["within_weekly_cap"], "m"))
    log.cause("2025-09-03T09:00:00+00:00", ("R-x", "accepted", ["france_accepted"], "m"))
    chain = Audit(log.entries, [{"request_id": "R-x", "arrival_id": "A1"}]).explain("A1")
    assert chain.requests == ["R-x"] and [e.doc["decision"] for e in chain.entries] == ["paired", "accepted"]


def test_unknown_subject_says_so():
    chain = Audit([]).explain("nobody")
    assert chain.kind == "unknown" and chain.entries == []
    assert summary(chain) == ["No Decision on ops.audit.v1 names nobody."]


def test_within_a_cause_the_request_comes_first_then_standing_then_the_new_pair_then_transfer():
    def d(decision, producer="oioo-matching"):
        return {"decision": decision, "producer": producer}
    order = [causal_rank(d("refused"), "request"), causal_rank(d("ineligible"), "arrival"),
             causal_rank(d("requeued"), "application"), causal_rank(d("paired"), "arrival"),
             causal_rank(d("paired"), "application"), causal_rank(d("requested", "oioo-transfer"), "request")]
    assert order == sorted(order) and len(set(order)) == len(order)


def test_rows_are_readable_and_keep_the_codes():
    log, r1, _ = refused_and_repaired()
    rows = lines(Audit(log.entries).explain("A1"))
    assert rows[0]["time"] == "2025-09-01 09:00:00 UTC"
    assert rows[0]["reasons"] == "asylum claim not yet decided [asylum_claim_undecided]"
    assert rows[5]["subject"] == "seat P1" and f"with return request {r1}" in rows[5]["reasons"]
    assert all(r["rule_version"] == RULE for r in rows)
    assert readable("something_new") == "something new"


from hypothesis import given, strategies as st  # noqa: E402


@given(st.permutations(range(len(refused_and_repaired()[0].entries))),
       st.dictionaries(st.sampled_from(["A1", "A2", "P1", "R1", "R2"]), st.integers(0, 2)))
def test_the_order_never_depends_on_how_the_partitions_interleave(order, placing):
    """Each subject's Decisions share a partition (keyed by subject_ref), in the order taken;
    the reader may see the partitions interleaved any way."""
    log, r1, r2 = refused_and_repaired()
    reference = [e.doc["event_id"] for e in Audit(log.entries).explain("P1").entries]
    named = {"R1": r1, "R2": r2}
    partition_of = {named.get(k, k): p for k, p in placing.items()}
    next_offset: dict[int, int] = {}
    placed = []
    for e in log.entries:
        p = partition_of.get(e.subject, 0)
        next_offset[p] = next_offset.get(p, -1) + 1
        placed.append(Entry(e.doc, partition=p, offset=next_offset[p]))
    moved = [placed[i] for i in order]
    assert [e.doc["event_id"] for e in Audit(moved).explain("P1").entries] == reference
