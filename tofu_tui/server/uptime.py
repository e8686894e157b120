"""Daily uptime from connected intervals: per UTC day, the connected fraction of the
part of that day the station existed (and, for today, that has elapsed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta


def _merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def daily_uptime(
    intervals: Iterable[tuple[datetime, datetime | None]],
    *,
    created_at: datetime,
    now: datetime,
    days: int,
) -> list[tuple[date, float | None]]:
    """`days` entries, oldest first, ending today (UTC). An open interval (end None)
    lasts until `now`. A day before the station existed is None."""
    closed = _merge((start, end if end is not None else now) for start, end in intervals)
    today = now.astimezone(UTC).date()
    out: list[tuple[date, float | None]] = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        day_start = datetime.combine(day, time.min, tzinfo=UTC)
        window_start = max(day_start, created_at)
        window_end = min(day_start + timedelta(days=1), now)
        if window_end <= window_start:
            out.append((day, None))
            continue
        connected = timedelta()
        for start, end in closed:
            lo, hi = max(start, window_start), min(end, window_end)
            if hi > lo:
                connected += hi - lo
        out.append((day, min(1.0, connected / (window_end - window_start))))
    return out
