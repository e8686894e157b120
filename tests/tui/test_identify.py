"""The identify-unit form follows the procedure's `unit` section, as the station
status carries it: prefilled from the defaults, only the declared fields, sub-units
and metadata included, and no form at all for `auto_identify`."""

from __future__ import annotations

from typing import Any

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle, toast_says
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tests.tui.test_scanner import burst
from tofu_tui.models.commands import RunCommand
from tofu_tui.models.status import StationStatus, SubUnit, UnitField, UnitInfo
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)


def status_with(unit: UnitInfo | None) -> StationStatus:
    status = scenarios.idle_status()
    status.procedures[0].unit = unit
    return status


def console(backend: ScriptedBackend) -> StationConsole:
    return StationConsole(backend, clock=fixed_clock, status_interval=3600)


def form_values(app: StationConsole) -> dict[str, Any]:
    assert isinstance(app.screen, PromptForm)
    return {field.key: field.read() for field in app.screen.fields}


DEFAULTS = UnitInfo(
    serial_number=UnitField(default_value="SN-DEMO", placeholder="CB-####"),
    part_number=UnitField(default_value="CB-100", description="From the traveller"),
    revision_number=UnitField(default_value="C"),
)


async def test_the_form_is_prefilled_from_the_unit_defaults_and_shows_only_declared_fields() -> None:
    backend = ScriptedBackend(status_with(DEFAULTS))
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        assert form_values(app) == {"serial_number": "SN-DEMO", "part_number": "CB-100", "revision_number": "C"}
        text = screen_text(app)
        assert "From the traveller" in text
        assert "Batch" not in text  # not declared by this procedure
        # Enter takes the defaults as they stand.
        await pilot.press("enter")
        await pilot.pause()
    assert backend.sent == [
        RunCommand(procedure_id="proc-charger", serial_number="SN-DEMO", part_number="CB-100", revision_number="C")
    ]


async def test_a_scan_replaces_the_prefilled_serial_and_the_part() -> None:
    backend = ScriptedBackend(status_with(DEFAULTS))
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await burst(pilot, "SN-0001\tCB-200\n")
    assert backend.sent == [
        RunCommand(procedure_id="proc-charger", serial_number="SN-0001", part_number="CB-200", revision_number="C")
    ]


async def test_what_the_operator_typed_last_wins_over_the_default_for_that_procedure_only() -> None:
    backend = ScriptedBackend(status_with(DEFAULTS))
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await burst(pilot, "SN-1\tCB-300\tD\n")
        backend.emit(*scenarios.run_failed())
        await settle(pilot, backend)
        await pilot.press("r")
        # The serial is the default again (each unit has its own); part and revision are kept.
        assert form_values(app) == {"serial_number": "SN-DEMO", "part_number": "CB-300", "revision_number": "D"}
        await pilot.press("escape")
        await pilot.pause()
        # Another procedure (no unit section known) does not inherit them.
        await pilot.press("down", "r")
        assert form_values(app) == {"serial_number": "", "part_number": "", "revision_number": "", "batch_number": ""}


async def test_sub_units_and_metadata_are_asked_and_sent_as_the_identify_preset() -> None:
    unit = UnitInfo(
        sub_units=[SubUnit(key="radio", label="Radio module", serial_number=UnitField(default_value="RM-1"))],
        metadata={"operator_shift": UnitField(), "fixture": UnitField(default_value="FX-2")},
    )
    backend = ScriptedBackend(status_with(unit))
    app = console(backend)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        # Serial, part, then the sub-unit, then metadata alphabetically.
        assert form_values(app) == {
            "serial_number": "",
            "part_number": "",
            "sub_unit:radio": "RM-1",
            "metadata:fixture": "FX-2",
            "metadata:operator_shift": "",
        }
        assert "Radio module serial number *" in screen_text(app)
        await burst(pilot, "SN5\tPN5\tRM-9\t\tnight\n")
    assert backend.sent == [
        RunCommand(
            procedure_id="proc-charger",
            serial_number="SN5",
            part_number="PN5",
            ui_values={"identify": {"sub_unit:radio": "RM-9", "metadata:fixture": "FX-2", "metadata:operator_shift": "night"}},
        )
    ]


async def test_auto_identify_starts_the_run_without_asking() -> None:
    unit = UnitInfo(
        auto_identify=True,
        serial_number=UnitField(default_value="GOLDEN-1"),
        part_number=UnitField(default_value="CB-100"),
    )
    backend = ScriptedBackend(status_with(unit))
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, PromptForm)
        assert await toast_says(pilot, "Charger Board EOL: started for GOLDEN-1 (auto-identify).")
    # The engine takes the defaults itself, as `tofu-tui run` does.
    assert backend.sent == [RunCommand(procedure_id="proc-charger")]


async def test_auto_identify_refused_says_why() -> None:
    unit = UnitInfo(auto_identify=True, serial_number=UnitField(default_value="G"), part_number=UnitField(default_value="P"))
    backend = ScriptedBackend(status_with(unit), replies={"Run": lambda _: "The station is stopping; it takes no new runs."})
    app = console(backend)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await settle(pilot, backend)
        await pilot.press("r")
        assert await toast_says(pilot, "The station is stopping; it takes no new runs.")
        assert not isinstance(app.screen, PromptForm)
