"""Console test helpers: a settled pilot, and SVG snapshots stored in `snapshots/`.

pytest-textual-snapshot stores through syrupy under `tests/tui/__snapshots__/<file>/`;
the project keeps them at the repository root instead (`snapshots/<test name>.svg`),
so this `snap_compare` uses the same screenshot and normalisation with that location.
Update them with `pytest tests/tui --snapshot-update`, then look at every one.
"""

from __future__ import annotations

import html
import re
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
    for _ in range(2000):
        await pilot.pause()
        if backend.pending() <= 0:
            break
    await pilot.pause()
    app = pilot.app
    app.flush()  # type: ignore[attr-defined]
    await pilot.pause()


_TEXT_RUN = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
    r'clip-path="url\(#terminal-[\w-]*?line-(\d+)\)">([^<]*)</text>'
)


def screen_text(app: App[Any]) -> str:
    """What the terminal shows right now, as plain text (one line per row)."""
    svg = app.export_screenshot()
    rows: dict[int, list[tuple[int, str]]] = {}
    for match in _TEXT_RUN.finditer(svg):
        column = round(float(match.group(1)) / CELL_WIDTH)
        text = html.unescape(match.group(3)).replace("\xa0", " ")
        rows.setdefault(int(match.group(2)), []).append((column, text))
    lines = []
    for row in range(app.size.height):
        buffer = [" "] * app.size.width
        for column, text in rows.get(row, []):
            for offset, char in enumerate(text):
                if column + offset < len(buffer):
                    buffer[column + offset] = char
        lines.append("".join(buffer).rstrip())
    return "\n".join(lines)


CELL_WIDTH = 12.2  # pixels per cell in Textual's SVG export


def toasts(app: App[Any]) -> str:
    """The notifications on screen now, one per line (toasts wrap, so read them whole)."""
    return "\n".join(str(toast.render()) for toast in app.screen.query("Toast"))


async def shows(pilot: Pilot[Any], text: str, *, absent: bool = False) -> bool:
    """Whether the screen shows `text` (or, `absent`, stops showing it) within a
    bounded number of event-loop turns; for what settles a few frames later
    (resizes, screens being dismissed) on a loaded machine."""
    for _ in range(100):
        if (text in screen_text(pilot.app)) != absent:
            return True
        await pilot.pause()
    return False


async def toast_says(pilot: Pilot[Any], text: str) -> bool:
    """Whether a notification containing `text` shows within a bounded number of turns."""
    for _ in range(100):
        if text in toasts(pilot.app):
            return True
        await pilot.pause()
    return False
