"""An attached console follows its daemon across a restart: it says it is
reconnecting, tries again with a growing pause, and is back to normal once the daemon
answers; what only the old daemon knew (its run, its prompts) does not linger."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle, toasts
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.models.commands import RunCommand
from tofu_tui.tui import app as app_module
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "RECONNECT_FIRST_S", 0.01)
    monkeypatch.setattr(app_module, "RECONNECT_MAX_S", 0.04)


async def soon(pilot: Pilot[Any], text: str, *, toast: bool = False, after: int = 0) -> bool:
    """Whether the screen (or a notification) shows `text` within a few seconds: the
    retries take real time, more of it on a loaded machine. With `after`, `text` must be
    followed by a number above it (a try count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    pattern = re.compile(re.escape(text) + (r"(\d+)" if after else ""))
    while loop.time() < deadline:
        found = pattern.search(toasts(pilot.app) if toast else screen_text(pilot.app))
        if found and (not after or int(found.group(1)) > after):
            return True
        await pilot.pause(0.01)
    return False


def console(backend: ScriptedBackend) -> StationConsole:
    return StationConsole(backend, clock=fixed_clock, status_interval=3600)


async def test_daemon_restart_shows_reconnecting_then_back_to_normal() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        backend.unreachable = "The station daemon is not running."
        backend.hang_up()
        assert await soon(pilot, "⟳ RECONNECTING  daemon restarting… reconnecting")
        assert "  Bench 07 · Charger line" in screen_text(app).splitlines()[0]
        # It keeps trying (which try is on screen when we look depends on the load).
        assert await soon(pilot, "reconnecting (try ", after=2)
        backend.unreachable = None
        assert await soon(pilot, "● ONLINE  Bench 07 · Charger line")
        assert "RECONNECTING" not in screen_text(app)
        assert await soon(pilot, "Reconnected to the station daemon.", toast=True)
        # The new subscription carries events again.
        backend.emit(scenarios.run_started("CB-AFTER"))
        await settle(pilot, backend)
        assert "CB-AFTER" in screen_text(app)


async def test_a_run_the_restart_ended_unseen_is_shown_lost_and_its_prompt_closes() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.led_prompt())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        # kill -9: no run_finished, no ui_closed; the new daemon has no run in flight.
        backend.unreachable = "gone"
        backend.hang_up()
        assert await soon(pilot, "RECONNECTING")
        backend.set_status(scenarios.idle_status(run_in_flight=None))
        backend.unreachable = None
        assert await soon(pilot, "The run in progress did not finish", toast=True)
        await settle(pilot, backend)
        assert not isinstance(app.screen, PromptForm)
        assert " LOST " in screen_text(app)
        # The station is free again: r opens the identify form, not "a run is in progress".
        await pilot.press("r", *"SN2", "tab", *"PN2", "enter")
        await pilot.pause()
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN2", part_number="PN2")]


async def test_a_run_still_in_flight_on_the_daemon_is_kept() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress())
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        execution_id = app.state.run.execution_id if app.state.run else None
        backend.set_status(scenarios.idle_status(run_in_flight=execution_id))
        backend.hang_up()  # a dropped connection, the daemon still up
        assert await soon(pilot, "Reconnected to the station daemon.", toast=True)
        assert app.state.run is not None and app.state.run.running
        assert "LOST" not in screen_text(app)
