"""How matching's aggregates become plain JSON records (one Redis record each), and back."""
from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any, ClassVar


_PLAIN = (str, int, bool, float, type(None))


def _dump(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


class Record:
    """Mixed into each aggregate's dataclass: `to_dict` / `from_dict` for the repository."""

    datetimes: ClassVar[tuple[str, ...]] = ()
    dates: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        names = type(self).__dict__.get("_names")
        if names is None:
            names = tuple(f.name for f in fields(self))  # type: ignore[arg-type]
            type.__setattr__(type(self), "_names", names)
        return {name: _dump(getattr(self, name)) for name in names}

    @classmethod
    def from_dict(cls, data: dict):
        """Raises (KeyError, TypeError, ValueError) on a record it cannot read: the runtime
        dead-letters what made the service fail rather than run on a half-read state."""
        kwargs = {}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for k, v in data.items():
            if k not in names:
                continue
            if v is not None and k in cls.datetimes:
                v = datetime.fromisoformat(v)
                if v.tzinfo is None:
                    raise ValueError(f"{cls.__name__}.{k}: time without offset")
            elif v is not None and k in cls.dates:
                v = date.fromisoformat(v)
            kwargs[k] = v
        return cls(**kwargs)
