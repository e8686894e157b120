"""kill -9 of the daemon during runs and uploads (10 times here; 50 in
benchmarks/soak_station_kill9.py): every finished run reaches the real server once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.station.killloop import kill_loop
from tests.station.realserver import RealServer


@pytest.mark.slow
def test_kill9_during_runs_and_uploads_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = RealServer.in_thread(tmp_path / "server")
    try:
        result = kill_loop(server, tmp_path / "station", tmp_path, kills=10, seed=5)
    finally:
        server.close()
    assert result.runs_finished >= 5  # the loop really ran procedures between kills
    assert result.duplicates == 0 and result.missing == 0 and result.attachment_anomalies == 0
    assert result.runs_on_server == result.runs_finished
