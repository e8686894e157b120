"""`tofu-tui run PATH --tui`: the console over one run of a procedure folder (no
station): the prompt is answered in the console, stop works, station actions are
refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.station import PHASES_PY, PROCEDURE_YAML, prompt_shown, until
from tests.tui.conftest import screen_text, toasts
from tofu_tui.procedure.execute import RunOptions
from tofu_tui.procedure.load import load_procedure
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.run_backend import OneRunBackend

WIDE = (160, 48)


def folder(tmp_path: Path) -> Path:
    path = tmp_path / "board"
    path.mkdir()
    (path / "procedure.yaml").write_text(PROCEDURE_YAML)
    (path / "phases.py").write_text(PHASES_PY)
    return path


@pytest.mark.timeout(40)
async def test_one_run_in_the_console_answer_then_pass(tmp_path: Path) -> None:
    options = RunOptions(unit={"serial_number": "S9", "part_number": "P1"})
    backend = await OneRunBackend(load_procedure(folder(tmp_path)), options).start()
    app = StationConsole(backend, status_interval=3600)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await prompt_shown(pilot)
        await pilot.press("o", "k", "enter")
        await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run to pass")
        assert "Board test · one run" in screen_text(app)
        # No station behind this console: another run is refused with what to do instead.
        await pilot.press("p")
        await until(pilot, lambda: "no station to pull" in toasts(app), "the refusal")
        await pilot.press("q")
    assert backend.result.outcome == "PASS"
    (run,) = backend.result.runs
    assert run.serial_number == "S9"
    assert {m.name: m.measured_value for p in run.phases for m in p.measurements or []}["note"] == "ok"


@pytest.mark.timeout(40)
async def test_quitting_the_one_run_console_stops_the_run(tmp_path: Path) -> None:
    options = RunOptions(unit={"serial_number": "S10", "part_number": "P1"})
    backend = await OneRunBackend(load_procedure(folder(tmp_path)), options).start()
    app = StationConsole(backend, status_interval=3600)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await prompt_shown(pilot)
        await pilot.press("escape", "q", "y")
        await pilot.pause()
    await backend.close()
    assert backend.result.outcome == "ABORTED"


def test_tui_does_not_go_with_json(tmp_path: Path) -> None:
    result = run_cli(["run", str(folder(tmp_path)), "--tui", "--json"])
    assert result.returncode == 2
    assert "--tui" in result.stderr and "--json" in result.stderr
