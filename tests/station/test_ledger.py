"""The uptime ledger in a real SQLite file, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tofu_tui.station import state_db
from tofu_tui.station.ledger import CONNECTED, RUNNING, Ledger
from tofu_tui.station.paths import StationPaths

DAY = 86400.0


def test_outage_shows_in_its_day_and_percentages(paths: StationPaths) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    ledger = Ledger(state_db.connect(paths.state_db))
    # Day 1 connected all day; day 2 down from 06:00 to 18:00; day 3 half over, connected.
    for t in range(0, int(DAY * 2.5) + 1, 600):
        now = t0 + t
        ledger.mark(RUNNING, now)
        if DAY + 6 * 3600 <= t < DAY + 18 * 3600:
            ledger.close(CONNECTED, now)
        else:
            ledger.mark(CONNECTED, now)
    up = ledger.uptime(days=5, now=t0 + 2.5 * DAY)
    by_day = {d.date.isoformat(): d.uptime for d in up.days}
    assert by_day["2026-02-27"] is None and by_day["2026-02-28"] is None  # before the station existed
    assert by_day["2026-03-01"] == pytest.approx(1.0)
    assert by_day["2026-03-02"] == pytest.approx(0.5, abs=0.01)
    assert by_day["2026-03-03"] == pytest.approx(1.0)
    assert up.last_24h == pytest.approx(0.75, abs=0.01)  # 06:00-18:00 of day 2 overlaps by 6 h
    assert up.last_90d == pytest.approx(2.0 / 2.5, abs=0.01)


def test_a_crash_loses_at_most_one_tick_and_a_restart_starts_a_new_interval(paths: StationPaths) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    first = Ledger(state_db.connect(paths.state_db))
    for t in range(0, 3600 + 1, 300):
        first.mark(CONNECTED, t0 + t)
    # killed: no close. An hour later a new process starts.
    second = Ledger(state_db.connect(paths.state_db))
    second.mark(CONNECTED, t0 + 7200)
    second.mark(CONNECTED, t0 + 3 * 3600)
    assert second.covered(CONNECTED, t0, t0 + 3 * 3600) == pytest.approx(2 * 3600)
    assert second.fraction(CONNECTED, t0, t0 + 3 * 3600) == pytest.approx(2 / 3)


def test_the_open_interval_counts_until_now_between_ticks(paths: StationPaths) -> None:
    """A station connected since it started shows 100 %, not a dip until the next tick."""
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
    ledger = Ledger(state_db.connect(paths.state_db), tick_s=15)
    ledger.mark(RUNNING, t0)
    ledger.mark(CONNECTED, t0)
    up = ledger.uptime(days=1, now=t0 + 14)  # 14 s on, no tick since
    assert up.last_24h == pytest.approx(1.0)
    assert up.days[-1].uptime == pytest.approx(1.0)
    ledger.close(CONNECTED, t0 + 20)  # disconnected at 20 s: that gap shows
    assert ledger.uptime(days=1, now=t0 + 40).last_24h == pytest.approx(0.5)
