"""Pydantic v2 models of every event in the wire contract v1, plus our internal envelopes."""
