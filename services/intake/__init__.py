"""Intake: the edge. Verifies signatures, parses, de-duplicates and dead-letters inbound events,
and passes what it accepts down the one internal path (intake -> enforcement -> matching)."""
