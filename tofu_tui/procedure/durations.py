"""Durations in procedure.yaml (§2.2): integer milliseconds or `1h30m`, `250ms`, ..."""

from __future__ import annotations

import re
from typing import Any

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_GROUP = re.compile(r"([0-9]+)(ms|s|m|h)")
MAX_TIMEOUT_MS = 24 * 3_600_000


class DurationError(ValueError):
    """A duration that cannot be parsed; the message says why and what to write."""


def parse_duration(value: Any) -> int:
    """Milliseconds for an integer or a `<digits><unit>` string; raises DurationError."""
    if isinstance(value, bool) or value is None:
        raise DurationError(f"expected a duration such as 500ms, 30s or 1h30m, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise DurationError(f"a duration cannot be negative, got {value}")
        if value == 0:
            raise DurationError("a duration must be greater than zero")
        return value
    if isinstance(value, float):
        raise DurationError(
            f"a duration must be whole milliseconds or use units (e.g. 1500ms), got {value!r}"
        )
    if not isinstance(value, str):
        raise DurationError(f"expected a duration such as 500ms, 30s or 1h30m, got {value!r}")
    text = "".join(value.split())
    if "." in text:
        raise DurationError(
            f"{value!r}: decimal points are not allowed in durations; write e.g. 1500ms instead of 1.5s"
        )
    total = 0
    position = 0
    for match in _GROUP.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if not text:
        raise DurationError("a duration must be greater than zero (got an empty string)")
    if position != len(text):
        rest = text[position:]
        if rest.isdigit():
            raise DurationError(
                f"{value!r}: {rest} has no unit; add one of ms, s, m, h (e.g. {rest}ms),"
                " or write the whole duration as a plain number of milliseconds"
            )
        raise DurationError(
            f"{value!r} is not a duration; use <number><unit> groups with units ms, s, m, h"
            " (e.g. 1h30m, 250ms)"
        )
    if total == 0:
        raise DurationError(f"{value!r}: a duration must be greater than zero")
    return total
