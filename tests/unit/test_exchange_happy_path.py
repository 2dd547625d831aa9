from tests.support.factory import DAY, HOUR, MINUTE, T0, admission_arrived, answer, arrival, eoi, executed, tick, vetted
from tests.unit.harness import Harness
from shared.timeutil import iso_week


def test_one_pair_goes_all_the_way_from_arrival_to_admission():
    h = Harness()
    h.send(arrival("A1", T0))
    assert h.decisions("A1", "eligible")
    h.send(eoi("P1", T0 + HOUR))
    h.send(vetted("P1", T0 + 2 * HOUR))
    [req] = h.instructions("RequestReturn")
    assert req["arrival_id"] == "A1" and req["week"] == iso_week(T0)
    rid = req["request_id"]
    h.send(answer(rid, T0 + DAY))
    h.send(executed(rid, T0 + 2 * DAY))
    [offer] = h.instructions("OfferAdmission")
    assert offer["application_id"] == "P1" and offer["paired_request_ids"] == [rid]
    h.send(admission_arrived("P1", T0 + 3 * DAY))
    b = h.balance(iso_week(T0))
    assert (b["pairs_formed"], b["returns_requested"], b["returns_accepted"], b["returns_executed"],
            b["admissions_offered"], b["admissions_arrived"]) == (1, 1, 1, 1, 1, 1)
    assert b["cumulative_returns_executed"] == b["cumulative_admissions_offered"] == 1


def test_eighty_ready_pairs_in_a_week_with_cap_fifty_give_fifty():
    h = Harness()
    for i in range(80):
        h.send(arrival(f"A{i:03d}", T0 + i * MINUTE))
    for i in range(80):
        h.send(eoi(f"P{i:03d}", T0 + 2 * HOUR))
        h.send(vetted(f"P{i:03d}", T0 + 2 * HOUR))
    assert len(h.instructions("RequestReturn")) == 50
    assert h.balance(iso_week(T0))["pairs_formed"] == 50
    assert len(h.alerts("cap_reached")) == 1
    # the oldest arrivals went first
    assert sorted(h.requests()) == [f"A{i:03d}" for i in range(50)]


def test_matching_announces_each_new_day_of_its_clock_once():
    """Transfer forgets particulars by matching's clock: a DayBegan instruction when it moves into
    a new UTC day, and only then."""
    h = Harness()
    for at in (T0, T0 + HOUR, T0 + 20 * HOUR, T0 + 21 * HOUR, T0 + 72 * HOUR, T0 + 71 * HOUR):
        h.send(tick(at))
    assert [i["day"] for i in h.instructions("DayBegan")] == ["2025-09-01", "2025-09-02", "2025-09-04"]
