"""Matching: the scheme's ledger. Cases and their blockers, seats and their vetting, pairs
under the weekly cap, requests and their clocks, holds, offers and the weekly balance.

- `rules.py` — the treaty's decisions as pure functions.
- aggregates, plain classes with their invariants as methods: `case.py` (Case), `seat.py`
  (Seat, FamilyGroup), `pair.py` (Pair), `week.py` (Week), `ledger.py` (now, pause, totals).
- `deadlines.py` (the schedule, keyed by stable ids), `queues.py` (ready returns and seats in
  rule order), `repository.py` (aggregates <-> Redis records), `events.py` (typed domain events).
- `exchange.py` — the unit of work: per event, fire deadlines, dispatch to a handler, match,
  publish the figures. Handlers by side: `return_side.py`, `admission_side.py`,
  `movements.py`, `controls.py`, `deferred.py` (events whose subject is not known yet);
  `pairing.py` forms, seats, breaks and offers pairs.
- `app.py` — the wiring: parse, apply, persist, publish with stable ids.
"""
