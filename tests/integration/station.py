"""An enrolled station against the real local server, with a procedure deployed from a
real Git repository: what the console tests attach to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tests.conftest import run_cli
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tests.tui.conftest import screen_text, toasts
from tofu_tui.station.paths import StationPaths, station_paths
from tofu_tui.tui.forms import PromptForm

PROCEDURE_YAML = """name: Board test
version: "1.0"
main:
  - name: Power on
    python: phases:power_on
    measurements:
      - {name: Voltage, unit: V, validators: [{operator: ">=", expected_value: 3.0}]}
  - name: Visual check
    ui:
      components:
        - {type: text_input, key: note, label: Inspection note, required: true, min_length: 2,
           bind: measurements.note}
    measurements:
      - {name: Note}
"""

PHASES_PY = """def power_on(log, measurements):
    log.info("rail up")
    measurements.voltage = 3.3
"""


@dataclass
class Station:
    server: RealServer
    home: Path
    paths: StationPaths
    station_id: str
    procedure_id: str
    deployment_id: str

    @property
    def env(self) -> dict[str, str]:
        return {"TOFU_TUI_HOME": str(self.home)}


def enrolled_station(server: RealServer, tmp_path: Path, name: str = "Bench 7",
                     procedure_yaml: str = PROCEDURE_YAML) -> Station:
    """A station enrolled on `server` with `Board test` linked and deployed."""
    home = tmp_path / "station"
    station_id, token = server.station(name)
    login = run_cli(["login", "--url", server.url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
    assert login.returncode == 0, login.stderr
    repo = Repo(tmp_path / "repo")
    repo.commit({"procedure.yaml": procedure_yaml, "phases.py": PHASES_PY}, "Board test: power and visual check")
    procedure_id = server.procedure("Board test", repo.url, station_id)
    deployment_id = server.deploy(procedure_id)
    return Station(server, home, station_paths(home), station_id, procedure_id, deployment_id)


async def until(pilot: Pilot[Any], condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Let the console work until `condition` holds (real processes take real time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen_text(pilot.app)}\n"
                         f"notifications:\n{toasts(pilot.app)}\nfocused: {pilot.app.focused!r}")


async def prompt_shown(pilot: Pilot[Any], label: str = "Inspection note") -> Any:
    """The run's prompt form, once it is on screen (not merely pushed)."""
    app = pilot.app
    return await until(pilot, lambda: isinstance(app.screen, PromptForm) and app.screen.request_id
                       and label in screen_text(app) and app.screen, "the run's prompt")
