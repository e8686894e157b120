"""A barcode scanner types like a keyboard, but a whole code with its Tab or Enter in
one burst. `pilot.press` waits for the app to go idle after each key, which a scanner
never does, so `burst()` hands the keys to the app the way the terminal driver does
with one read: all at once, before any of them is handled."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.pilot import Pilot

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.models.commands import RunCommand, UiResponseCommand
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)
KEY_NAMES = {"\t": "tab", "\n": "enter", "\x1b[Z": "shift+tab"}


async def burst(pilot: Pilot[Any], *parts: str) -> None:
    """Send the keys as one terminal read: each part is text (\t is Tab, \n Enter)
    or one escape sequence from KEY_NAMES."""
    app = pilot.app
    assert app._driver is not None
    keys = [key for part in parts for key in ([part] if part in KEY_NAMES else list(part))]
    for key in keys:
        event = events.Key(KEY_NAMES.get(key, key), key if key.isprintable() else None)
        event.set_sender(app)
        app._driver.send_message(event)
    for _ in range(30):
        await pilot.pause()


def console(backend: ScriptedBackend) -> StationConsole:
    return StationConsole(backend, clock=fixed_clock, status_interval=3600)


async def test_a_scanner_burst_fills_serial_then_part_then_starts_the_run() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        assert isinstance(app.screen, PromptForm)
        await burst(pilot, "SN123\tPN456\n")
        assert not isinstance(app.screen, PromptForm)
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN123", part_number="PN456")]


async def test_r_and_the_scan_in_one_burst_land_in_the_form() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await burst(pilot, "rSN9\tPN9\n")
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN9", part_number="PN9")]


async def test_burst_with_enter_per_code_moves_to_the_missing_field_then_submits() -> None:
    # Scanners set to end each code with Enter: the first Enter finds the part missing
    # and moves there, the second code fills it and its Enter starts the run.
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await burst(pilot, "SN77\nPN77\n")
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN77", part_number="PN77")]


async def test_shift_tab_in_a_burst_goes_back_a_field() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await burst(pilot, "\tPN1", "\x1b[Z", "SN1\n")
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN1", part_number="PN1")]


async def test_pilot_press_of_the_scan_fills_the_fields_in_order() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r", *"SN123", "tab", *"PN456", "enter")
        await pilot.pause()
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="SN123", part_number="PN456")]


async def test_a_burst_answers_a_phase_prompt_field_by_field() -> None:
    components = [
        {"type": "text_input", "key": "board", "label": "Board serial", "required": True},
        {"type": "text_input", "key": "fixture", "label": "Fixture", "required": True},
    ]
    backend = ScriptedBackend(scenarios.idle_status(), [scenarios.run_started(), scenarios.prompt_request(components)])
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        await burst(pilot, "B-1\tFX-2\n")
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"board": "B-1", "fixture": "FX-2"})]


async def test_r_is_a_letter_in_a_form_and_in_the_palette() -> None:
    # `r` starts a run only from the main screen, though its binding goes first.
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await burst(pilot, "rr-1\tpr\n")
        await pilot.press("ctrl+p", *"retry")
        for _ in range(10):
            await pilot.pause(0.02)
        assert "Retry upload" in screen_text(app)
    assert backend.sent == [RunCommand(procedure_id="proc-charger", serial_number="rr-1", part_number="pr")]
