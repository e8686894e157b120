"""An attached console outlives its daemon: kill -9 the real daemon mid-run, start a
new one, and the console attaches to it by itself, says the run was lost, and runs
the next unit through the new daemon."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.integration.station import enrolled_station, prompt_shown, until
from tests.station.daemonproc import Daemon, wait_until
from tests.station.realserver import RealServer
from tests.tui.conftest import screen_text, toasts
from tofu_tui.tui import app as app_module
from tofu_tui.tui import daemon_backend
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm


@pytest.mark.timeout(90)
async def test_console_reconnects_after_the_daemon_is_killed_and_restarted(server: RealServer, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "RECONNECT_MAX_S", 1.0)  # the backoff's cap, shortened for the test
    station = enrolled_station(server, tmp_path)
    daemon = Daemon(station.home)
    try:
        await asyncio.to_thread(daemon.event, "deployment_pulled", 30, deployment_id=station.deployment_id,
                                status="active")
        backend = await daemon_backend.connect(station.paths)
        assert backend is not None
        app = StationConsole(backend, status_interval=0.5)
        async with app.run_test(size=(160, 48), notifications=True) as pilot:
            await until(pilot, lambda: "Board test" in screen_text(app), "the linked procedure")
            await pilot.press("r", *"S1", "tab", *"P1", "enter")
            await prompt_shown(pilot)  # the run waits on its prompt

            daemon.signal(signal.SIGKILL)
            await asyncio.to_thread(daemon.wait, 10)
            await until(pilot, lambda: "daemon restarting… reconnecting" in screen_text(app), "the reconnecting state")
            await until(pilot, lambda: "reconnecting (try 3)" in screen_text(app), "more tries while the daemon is down")

            daemon = Daemon(station.home)
            await asyncio.to_thread(daemon.event, "daemon_started")
            await until(pilot, lambda: "Reconnected to the station daemon." in toasts(app), "the reconnection",
                        timeout=20)
            await until(pilot, lambda: "● ONLINE  Bench 7" in screen_text(app), "the header back to normal")
            assert "RECONNECTING" not in screen_text(app)
            assert "The run in progress did not finish" in toasts(app)
            assert not isinstance(app.screen, PromptForm)  # the dead run's prompt is gone
            await until(pilot, lambda: " LOST " in screen_text(app), "the lost run's badge")

            # The next unit runs through the new daemon.
            await pilot.press("r", *"S2", "tab", *"P2", "enter")
            await prompt_shown(pilot)
            await pilot.press(*"ok", "enter")
            await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run on the new daemon to pass")
            await pilot.press("q")
        (summary,) = await asyncio.to_thread(wait_until, station.server.runs, 20, "the run on the server")
        assert station.server.run(summary["id"])["unit"]["serial_number"] == "S2"
    finally:
        daemon.stop()
