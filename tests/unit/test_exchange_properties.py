"""Random interleavings of arrivals, casework, applications and transfer events: the contract's
invariants 1-5 hold after every step."""
from datetime import timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from services.matching import rules
from tests.support import factory as f
from tests.unit.harness import Harness
from shared.timeutil import iso_week

ARRIVALS = [f"A{i}" for i in range(6)]
APPS = [f"P{i}" for i in range(5)]

step = st.one_of(
    st.tuples(st.just("arrival"), st.sampled_from(ARRIVALS), st.booleans(), st.booleans()),
    st.tuples(st.just("casework"), st.sampled_from(ARRIVALS), st.sampled_from([
        ("LegalChallengeFiled", dict(challenge_id="J", kind="judicial_review")),
        ("LegalChallengeDecided", dict(challenge_id="J", outcome="dismissed")),
        ("LegalChallengeDecided", dict(challenge_id="J", outcome="upheld")),
        ("ProtectionClaimLodged", dict(claim_id="C", kind="trafficking")),
        ("ProtectionClaimResolved", dict(claim_id="C", outcome="refused")),
        ("AsylumClaimDecided", dict(outcome="withdrawn")),
        ("AgeAssessed", dict(assessed_minor=False)),
        ("PersonAbsconded", {}), ("PersonDetained", {}),
    ])),
    st.tuples(st.just("apply"), st.sampled_from(APPS), st.sampled_from([None, "FAM"]), st.booleans()),
    st.tuples(st.just("withdraw"), st.sampled_from(APPS)),
    st.tuples(st.just("answer"), st.integers(0, 20), st.sampled_from(["accepted", "refused"])),
    st.tuples(st.just("execute"), st.integers(0, 20)),
    st.tuples(st.just("fail"), st.integers(0, 20), st.sampled_from(["absconded", "medical"])),
    st.tuples(st.just("cap"), st.integers(0, 4)),
    st.tuples(st.just("tick"),),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(step, st.integers(1, 72)), min_size=1, max_size=60))
def test_invariants_hold_after_every_step(steps):
    h = Harness()
    now = f.T0
    for (s, hours) in steps:
        now = now + timedelta(hours=hours)
        requested = h.requests()
        kind = s[0]
        if kind == "arrival":
            doc = f.arrival(s[1], now, asylum_claimed=s[2], claimed_minor=s[3])
        elif kind == "casework":
            doc = f.casework(s[2][0], s[1], now, **s[2][1])
        elif kind == "apply":
            h.send(f.eoi(s[1], now, family=s[2], nationality="ERI" if s[3] else "SYR"))
            doc = f.vetted(s[1], now)
        elif kind == "withdraw":
            doc = f.withdrawn(s[1], now)
        elif kind in ("answer", "execute", "fail"):
            rids = [r["request_id"] for r in h.instructions("RequestReturn")]
            if not rids:
                continue
            rid = rids[s[1] % len(rids)]
            doc = (f.answer(rid, now, s[2]) if kind == "answer" else f.executed(rid, now) if kind == "execute"
                   else f.failed(rid, now, s[2]))
        elif kind == "cap":
            doc = f.cap_set(iso_week(now), s[1], now)
        else:
            doc = f.tick(now)
        before = len(h.effects)
        h.send(doc)
        new = h.effects[before:]
        ex, repo = h.ex, h.ex.repo
        cap_of = lambda w: w.cap_or(ex.settings.default_cap)  # noqa: E731
        # 1. a pair forms only while the week's live pairs are below its cap
        formed_weeks = {e.data["week"] for e in new if e.kind == "instruction" and e.data["kind"] == "RequestReturn"}
        for w in formed_weeks:
            assert repo.weeks[w].live_pairs <= cap_of(repo.weeks[w])
        for w, week in repo.weeks.items():
            assert week.live_pairs == sum(1 for p in repo.pairs.values() if p.week == w and p.live)
        # 2. cumulative admissions offered never exceed cumulative returns executed
        assert repo.ledger.cumulative_admissions_offered <= repo.ledger.cumulative_returns_executed
        offers = h.instructions("OfferAdmission")
        assert len({o["application_id"] for o in offers}) == len(offers)
        # 4. no request for anyone with an open blocker, none after the 14-day window
        for e in new:
            if e.kind == "instruction" and e.data["kind"] == "RequestReturn":
                case = repo.cases[e.data["arrival_id"]]
                facts = case.facts(ex.settings.scheme_start)
                assert not rules.blockers(facts) and not rules.permanent_bars(facts)
                assert ex.now < case.landed_at + timedelta(days=14)
        # every live pair has one case and at most one seat, each in one live pair
        live = [p for p in repo.pairs.values() if p.live]
        assert len({p.arrival_id for p in live if not p.executed}) == len([p for p in live if not p.executed])
        seated = [p.application_id for p in live if p.application_id]
        assert len(seated) == len(set(seated))
        # 5. a refused or lapsed return frees its seat: that seat is waiting again or re-paired
        for p in repo.pairs.values():
            if p.broken in ("refused", "lapsed") and p.application_id:
                seat = repo.seats[p.application_id]
                assert seat.status != "paired" or seat.request_id != p.request_id
        # restarting from the stored records gives the same state
    records = h.ex.repo.records(h.ex.repo.all_keys())
    again = Harness()
    again.ex.load({k: v for k, v in records.items() if v is not None})
    assert again.ex.repo.records(set(records)) == records
