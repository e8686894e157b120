"""The console while it shuts down: messages still in flight must not crash it."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.tui import scenarios
from tests.tui.conftest import settle
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.panels import DeploymentPanel, ProcedureTable


async def test_procedure_highlight_landing_after_panels_are_gone() -> None:
    """Shutdown removes widgets while a highlight from the procedure table is still
    queued; the handler then finds no deployment panel and must let the app close."""
    backend = ScriptedBackend(scenarios.idle_status())
    app = StationConsole(backend, clock=fixed_clock, status_interval=3600)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, backend)
        table = app.main_screen.query_one(ProcedureTable)
        await app.main_screen.query_one(DeploymentPanel).remove()
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        table.post_message(DataTable.RowHighlighted(table, table.cursor_row, row_key))
        await pilot.pause()
        await pilot.pause()
        assert app.return_code is None and app.is_running
