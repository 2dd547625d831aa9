"""How matching's aggregates become plain JSON records (one Redis record each), and back."""
from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any, Callable, ClassVar


_PLAIN = frozenset({str, int, bool, float, type(None)})


def _dump(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else _dump(v) for v in value]
    if kind is dict:
        return {k: v if type(v) in _PLAIN else _dump(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _dumper(cls: type) -> Callable[[Any], dict]:
    """The class's `to_dict`, written out once: one dict display over its fields, a plain value
    taken as it is, a datetime as its ISO form, an empty list or dict as a new empty one, anything
    else through `_dump` (the same record as dumping each field)."""
    items = ", ".join(f"{f.name!r}: (v if (t := type(v := self.{f.name})) in _PLAIN "
                      f"else v.isoformat() if t is _datetime else [] if t is list and not v "
                      f"else {{}} if t is dict and not v else _dump(v))" for f in fields(cls))
    namespace: dict[str, Any] = {"_PLAIN": _PLAIN, "_dump": _dump, "_datetime": datetime}
    exec(f"def to_dict(self):\n    return {{{items}}}\n", namespace)  # noqa: S102 - our own field names
    return namespace["to_dict"]


class Record:
    """Mixed into each aggregate's dataclass: `to_dict` / `from_dict` for the repository."""

    datetimes: ClassVar[tuple[str, ...]] = ()
    dates: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        dump = type(self).__dict__.get("_to_dict")
        if dump is None:
            dump = _dumper(type(self))
            type.__setattr__(type(self), "_to_dict", dump)
        return dump(self)

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
