"""At 80×24 nothing an operator needs is cut off: a prompt or an identify form taller
than the terminal keeps its title and its submit line on screen, opens at its top,
and shows each field's label as Tab reaches it; the help scrolls by keyboard."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.models.commands import RunCommand
from tofu_tui.models.status import SubUnit, UnitField, UnitInfo
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.dialogs import HelpScreen
from tofu_tui.tui.forms import PromptForm

SMALL = (80, 24)


def console(backend: ScriptedBackend) -> StationConsole:
    return StationConsole(backend, clock=fixed_clock, status_interval=3600)


async def settled(pilot: Pilot[Any]) -> str:
    for _ in range(5):
        await pilot.pause()
    return screen_text(pilot.app)


async def test_a_prompt_taller_than_the_terminal_keeps_its_ends_and_shows_each_label() -> None:
    backend = ScriptedBackend(scenarios.idle_status(), [*scenarios.run_in_progress(), scenarios.prompt_request()])
    app = console(backend)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        text = await settled(pilot)
        # It opens at the top: the instruction before the first field is read first.
        assert "Inspect the board under the lamp, then answer." in text
        assert "Enter or ctrl+s: submit · Esc: later" in text
        form = app.screen
        labelled = [f for f in form.fields if f.widget is not None and f.widget.focusable]
        for field in labelled[1:]:
            await pilot.press("tab")
            text = await settled(pilot)
            label = str(field.component.get("label"))
            assert app.focused is field.widget, label
            assert label in text, f"{label} not shown when its field has the focus:\n{text}"
            assert "Enter or ctrl+s: submit · Esc: later" in text


async def test_a_long_identify_form_fits_and_submits_from_its_last_field() -> None:
    status = scenarios.idle_status()
    status.procedures[0].unit = UnitInfo(
        serial_number=UnitField(description="Scan the label on the bottom side of the board"),
        revision_number=UnitField(), batch_number=UnitField(),
        sub_units=[SubUnit(key="radio", label="Radio module"), SubUnit(key="psu", label="PSU")],
        metadata={"fixture": UnitField(), "shift": UnitField()},
    )
    backend = ScriptedBackend(status)
    app = console(backend)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        text = await settled(pilot)
        assert "Identify unit · Charger Board EOL" in text
        assert "Serial number *" in text
        assert "Enter or ctrl+s: start run · Esc: cancel" in text
        await pilot.press(*"S1", "tab", *"P1", "tab", "tab", "tab", *"R1", "tab", *"U1", "tab", "tab", *"day")
        text = await settled(pilot)
        assert "shift" in text and "Start run" in text
        await pilot.press("enter")
        await pilot.pause()
    assert backend.sent == [
        RunCommand(procedure_id="proc-charger", serial_number="S1", part_number="P1",
                   ui_values={"identify": {"sub_unit:radio": "R1", "sub_unit:psu": "U1", "metadata:shift": "day"}})
    ]


async def test_help_scrolls_to_its_end_by_keyboard() -> None:
    backend = ScriptedBackend(scenarios.idle_status())
    app = console(backend)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, backend)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Esc closes" not in await settled(pilot)
        await pilot.press("end")
        text = await settled(pilot)
        assert "in a confirmation: confirm / cancel" in text and "Esc closes" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
