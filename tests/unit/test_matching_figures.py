"""The figures matching gives the metrics: this week's pairs and room, blockers, holds."""
from __future__ import annotations

from prometheus_client import REGISTRY

from shared import metrics
from shared.timeutil import iso_week
from tests.support.factory import HOUR, T0, arrival, casework, eoi, vetted
from tests.unit.harness import Wired

WEEK = iso_week(T0)


def test_figures_name_this_weeks_pairs_room_blockers_and_holds():
    w = Wired(default_cap=3)
    assert w.service.figures() == []
    w.send(arrival("A1", T0))
    w.send(arrival("A2", T0, asylum_claimed=True))
    w.send(eoi("P1", T0 + HOUR))
    w.send(vetted("P1", T0 + HOUR))
    w.send(casework("LegalChallengeFiled", "A1", T0 + 2 * HOUR, challenge_id="C1", kind="judicial_review"))
    figures = {(name, tuple(sorted(labels.items()))): value for name, labels, value in w.service.figures()}
    assert figures == {
        ("oioo_week_pairs_formed", (("week", WEEK),)): 1,
        ("oioo_week_cap_remaining", (("week", WEEK),)): 2,
        ("oioo_open_blockers", (("reason", "asylum_claim_undecided"),)): 1,
        ("oioo_holds", ()): 1,
    }
    metrics.set_figures(w.service.figures())
    assert REGISTRY.get_sample_value("oioo_week_cap_remaining", {"week": WEEK}) == 2
    assert REGISTRY.get_sample_value("oioo_open_blockers", {"reason": "asylum_claim_undecided"}) == 1
