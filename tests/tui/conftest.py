"""Console test helpers: a settled pilot, and SVG snapshots stored in `snapshots/`.

pytest-textual-snapshot stores through syrupy under `tests/tui/__snapshots__/<file>/`;
the project keeps them at the repository root instead (`snapshots/<test name>.svg`),
so this `snap_compare` uses the same screenshot and normalisation with that location.
Update them with `pytest tests/tui --snapshot-update`, then look at every one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation
from textual.app import App
from textual.pilot import Pilot

from tests.tui.scripted import ScriptedBackend

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "snapshots"


class RootSnapshots(SVGImageExtension):
    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOT_DIR)


@pytest.fixture
def snap_compare(snapshot: SnapshotAssertion) -> Callable[..., bool]:
    snapshot = snapshot.use_extension(RootSnapshots)

    def compare(
        app: App[Any],
        press: Iterable[str] = (),
        terminal_size: tuple[int, int] = (80, 24),
        run_before: Callable[[Pilot[Any]], Awaitable[None] | None] | None = None,
    ) -> bool:
        from textual._doc import take_svg_screenshot

        svg = take_svg_screenshot(app=app, press=press, terminal_size=terminal_size, run_before=run_before)
        return bool(snapshot == svg)

    return compare


async def settle(pilot: Pilot[Any], backend: ScriptedBackend) -> None:
    """Wait until the console has taken every scripted event and redrawn."""
    for _ in range(200):
        await pilot.pause()
        if backend.pending() == 0:
            break
    await pilot.pause()
    app = pilot.app
    app.flush()  # type: ignore[attr-defined]
    await pilot.pause()
