"""The console and a real daemon agree on the procedure's `unit` section: the station
status carries it from the deployed procedure.yaml, and an `auto_identify` procedure
starts at `r` without a form, its unit taken from the defaults, as in a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.station import enrolled_station, until
from tests.station.daemonproc import Daemon, wait_until
from tests.station.realserver import RealServer
from tests.tui.conftest import screen_text, toasts
from tofu_tui.tui import daemon_backend
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm

AUTO_YAML = """name: Board test
unit:
  auto_identify: true
  serial_number: {default_value: GOLDEN-7}
  part_number: {default_value: PN-GOLD, description: the golden unit}
main:
  - name: Power on
    python: phases:power_on
"""


@pytest.mark.timeout(60)
async def test_auto_identify_procedure_runs_at_r_without_a_form(server: RealServer, tmp_path: Path) -> None:
    station = enrolled_station(server, tmp_path, procedure_yaml=AUTO_YAML)
    daemon = Daemon(station.home)
    try:
        daemon.event("deployment_pulled", deployment_id=station.deployment_id, status="active")
        status = json.loads(run_cli(["status", "--json"], env=station.env).stdout)
        unit = status["procedures"][0]["unit"]
        assert unit["auto_identify"] is True
        assert unit["serial_number"]["default_value"] == "GOLDEN-7"
        assert unit["part_number"]["description"] == "the golden unit"

        backend = await daemon_backend.connect(station.paths)
        assert backend is not None
        app = StationConsole(backend, status_interval=0.5)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await until(pilot, lambda: app.status is not None and app.status.procedures
                        and app.status.procedures[0].unit is not None, "the procedure's unit section")
            await pilot.press("r")
            assert not isinstance(app.screen, PromptForm)
            await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run to pass")
            assert "GOLDEN-7" in screen_text(app)
            await pilot.press("q")
        (summary,) = wait_until(station.server.runs, 20, "the run on the server")
        run = station.server.run(summary["id"])
        assert run["unit"]["serial_number"] == "GOLDEN-7"
        assert run["unit"]["part"]["number"] == "PN-GOLD"
    finally:
        daemon.stop()
