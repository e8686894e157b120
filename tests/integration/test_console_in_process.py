"""The operator console with no daemon running: the station engine runs in the
console's process, with its control socket (so `tofu-tui status` attaches to it), and
quitting stops it: nothing left running, the socket removed, no run lost."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.station import Station, enrolled_station, prompt_shown, until
from tests.station.realserver import RealServer
from tests.tui.conftest import screen_text, toasts
from tofu_tui.station.paths import daemon_running, station_paths
from tofu_tui.tui import daemon_backend, local_backend
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.backend import BackendUnavailable
from tofu_tui.tui.dialogs import ConfirmScreen
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)


@pytest.fixture
def station(server: RealServer, tmp_path: Path) -> Station:
    return enrolled_station(server, tmp_path)


def queued_and_uploaded(station: Station) -> list[tuple[str, str]]:
    """(serial, outcome) of every run this station made: on the server or still queued."""
    queued = json.loads(run_cli(["queue", "ls", "--json"], env=station.env).stdout)
    return [(r["unit"]["serial_number"], r["outcome"]) for r in station.server.runs()] + \
        [(q["serial_number"], q["outcome"]) for q in queued]


async def start_run(pilot, app: StationConsole, serial: str) -> PromptForm:  # type: ignore[no-untyped-def]
    # The engine pulls the deployment first: its version shows once it is active.
    await until(pilot, lambda: re.search(r"active [0-9a-f]{7} on main", screen_text(app)),
                "the deployed procedure", timeout=20)
    await pilot.press("r", *serial, "tab", "P", "enter")
    return await prompt_shown(pilot)


@pytest.mark.timeout(60)
async def test_in_process_engine_runs_and_quitting_stops_it(station: Station) -> None:
    assert await daemon_backend.connect(station.paths) is None
    backend = await local_backend.start(station.paths)
    assert backend.mode == "in-process"
    app = StationConsole(backend, status_interval=1)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await start_run(pilot, app, "S7")
        assert "in-process" in screen_text(app)
        # One engine: the CLI attaches to this one instead of reading the state alone.
        status = json.loads((await asyncio.to_thread(run_cli, ["status", "--json"], env=station.env)).stdout)
        assert status["daemon_running"] is True and status["run_in_flight"]
        await pilot.press("o", "k", "enter")
        await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run to pass")
        await until(pilot, lambda: station.server.runs(), "the run on the server")
        await pilot.press("q")  # no run in flight: quits at once
        await pilot.pause()
    assert backend.task.done() and backend.task.result() == 0
    assert not station.paths.control_socket.exists()
    assert not daemon_running(station.paths)
    assert await daemon_backend.connect(station.paths) is None
    assert set(queued_and_uploaded(station)) == {("S7", "PASS")}
    assert len(station.server.runs()) == 1


@pytest.mark.timeout(60)
async def test_quit_during_a_run_asks_then_stops_the_run_and_keeps_it(station: Station) -> None:
    backend = await local_backend.start(station.paths)
    app = StationConsole(backend, status_interval=1)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await start_run(pilot, app, "S8")
        await pilot.press("escape")  # put the prompt aside
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Quit and stop the station?" in screen_text(app)
        await pilot.press("y")
        await pilot.pause()
    assert backend.task.done()
    assert not station.paths.control_socket.exists()
    # The stopped run was persisted, not lost: queued, or already uploaded (an upload
    # racing the shutdown may leave it in both for a moment; the server keeps one).
    assert set(queued_and_uploaded(station)) == {("S8", "ABORTED")}
    assert len(station.server.runs()) <= 1


@pytest.mark.timeout(30)
async def test_not_enrolled_station_says_how_to_log_in(tmp_path: Path) -> None:
    paths = station_paths(tmp_path / "fresh")
    with pytest.raises(BackendUnavailable, match=r"tofu-tui login --token"):
        await local_backend.start(paths)
    assert not paths.control_socket.exists()
    # What an operator typing `tofu-tui` sees: the same sentence, no traceback.
    result = await asyncio.to_thread(run_cli, [], env={"TOFU_TUI_HOME": str(tmp_path / "fresh")})
    assert result.returncode == 1
    assert "tofu-tui login --token" in result.stderr and "Traceback" not in result.stderr
