"""The contract's "Limits (checked at intake)": the numbers, and the one check that must not
recurse (nesting depth), kept together so the models and the edge agree on them."""
from __future__ import annotations

import re
from datetime import timedelta

MAX_VALUE_BYTES = 256 * 1024  # a larger value is `too_large`, before its signature is checked
MAX_DEPTH = 32  # JSON nested deeper is `not_json`
MAX_STRING = 1000  # characters in any string field, else `schema`
FIRST_YEAR, LAST_YEAR = 1900, 2100  # a date or time outside these calendar years is `schema`
# I-JSON (RFC 7493): the largest integer every consumer (a double in Lua or JavaScript) holds exactly.
JSON_SAFE_INT = 2**53 - 1
FUTURE_TOLERANCE = timedelta(hours=24)  # `occurred_at` further ahead of intake's clock: `implausible_time`

# The only bytes that matter for nesting: quotes, brackets, and an escape with the byte it escapes
# (so an escaped quote never ends a string). Scanning tokens keeps the check linear; a regex
# for whole strings backtracks quadratically on an unterminated one.
_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


def json_depth(raw: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in `raw` (a top-level object is 1); with
    `stop_above`, the scan ends as soon as the depth exceeds it.

    A linear scan of the brackets outside strings, done before any parser sees the value, so
    no depth of nesting can make the check itself recurse. UTF-8 never puts an ASCII byte
    inside a multi-byte character, so scanning the bytes is the same as scanning the text.
    Unbalanced brackets are not this function's business: the parser rejects them.
    """
    depth = deepest = 0
    in_string = False
    for match in _TOKEN.finditer(raw):
        token = match[0]
        if token == b'"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def deeper_than(raw: bytes, limit: int) -> bool:
    """Whether `raw` nests arrays and objects deeper than `limit` (`json_depth(raw) > limit`).

    Every level is opened by a `[` or `{` byte, so a value with no more of them than `limit`
    cannot be deeper, whatever its strings hold: two counts in C settle it for nearly every
    value, and only the rest is scanned.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    return json_depth(raw, stop_above=limit) > limit
