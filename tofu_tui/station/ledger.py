"""The local uptime ledger: when the daemon ran and when it was connected.

Intervals in state.db, extended by a tick while the state lasts, so uptime shows even
offline and a crash loses at most one tick. Uptime is the connected fraction, as the
dashboard computes it: per UTC day, and over the last 24 h, 7 days and 90 days,
counted from when this station first ran.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from tofu_tui.models.status import Uptime, UptimeDay

RUNNING = "running"
CONNECTED = "connected"


class Ledger:
    def __init__(self, conn: sqlite3.Connection, *, tick_s: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.tick_s = tick_s
        self.clock = clock
        self._open: dict[str, int] = {}  # kind -> row id of the interval this process extends

    def mark(self, kind: str, now: float | None = None) -> None:
        """The state `kind` holds now: extend its interval, or start one."""
        now = self.clock() if now is None else now
        row_id = self._open.get(kind)
        if row_id is not None:
            self.conn.execute("UPDATE ledger SET end = ? WHERE id = ? AND end <= ?", (now, row_id, now))
            return
        cursor = self.conn.execute("INSERT INTO ledger(kind, start, end) VALUES (?, ?, ?)", (kind, now, now))
        self._open[kind] = int(cursor.lastrowid or 0)

    def close(self, kind: str, now: float | None = None) -> None:
        """The state ended now; the next `mark` starts a new interval."""
        if kind in self._open:
            self.mark(kind, now)
            del self._open[kind]

    def intervals(self, kind: str, since: float, until: float,
                  now: float | None = None) -> list[tuple[float, float]]:
        open_id = self._open.get(kind)
        rows = self.conn.execute("SELECT id, start, end FROM ledger WHERE kind = ? AND (end > ? OR id = ?) "
                                 "AND start < ? ORDER BY start", (kind, since, open_id, until)).fetchall()
        merged: list[tuple[float, float]] = []
        for row_id, row_start, row_end in rows:
            # The interval this process holds open lasts until now, not until its last
            # tick: otherwise a young station's uptime dips between ticks.
            last = max(row_end, now) if row_id == open_id and now is not None else row_end
            start, end = max(row_start, since), min(last, until)
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            elif end > start:
                merged.append((start, end))
        return merged

    def first_seen(self) -> float | None:
        row = self.conn.execute("SELECT MIN(start) FROM ledger").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def covered(self, kind: str, since: float, until: float, now: float | None = None) -> float:
        return sum(end - start for start, end in self.intervals(kind, since, until, now))

    def fraction(self, kind: str, since: float, until: float, now: float | None = None) -> float | None:
        first = self.first_seen()
        if first is None or first >= until:
            return None
        since = max(since, first)
        span = until - since
        return min(1.0, self.covered(kind, since, until, now) / span) if span > 0 else None

    def uptime(self, days: int = 90, kind: str = CONNECTED, now: float | None = None) -> Uptime:
        now = self.clock() if now is None else now
        today = datetime.fromtimestamp(now, UTC).date()
        out: list[UptimeDay] = []
        for offset in range(days - 1, -1, -1):
            day: date = today - timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            out.append(UptimeDay(date=day, uptime=self.fraction(kind, start, min(start + 86400, now), now)))
        return Uptime(days=out, last_24h=self.fraction(kind, now - 86400, now, now),
                      last_7d=self.fraction(kind, now - 7 * 86400, now, now),
                      last_90d=self.fraction(kind, now - days * 86400, now, now))
