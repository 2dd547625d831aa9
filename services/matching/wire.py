"""Matching's outbound events as the wire carries them.

Each is written from values matching itself decided, which its model would accept unchanged
(ids, reasons, counts, `now`): the JSON is the model's own serialisation (pydantic-core's, in
the model's field order, defaults filled in), without validating and building a model first.
The unit tests hold these bytes equal to `Model(**values).model_dump_json()`.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from shared.events.internal import Instruction
from shared.events.outbound import Alert, Decision, WeeklyBalance


class Wire:
    """One model's JSON, from a complete set of its (valid) field values."""

    def __init__(self, model: type[BaseModel]):
        self.model = model
        # every field in the model's order: its default, or a place for the value it requires
        self.template: dict[str, Any] = {
            name: None if field.is_required() else field.default for name, field in model.model_fields.items()}

    def __call__(self, **values: Any) -> bytes:
        return to_json({**self.template, **values})


DECISION = Wire(Decision)
ALERT = Wire(Alert)
BALANCE = Wire(WeeklyBalance)
INSTRUCTION = Wire(Instruction)
