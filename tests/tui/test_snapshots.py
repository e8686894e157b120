"""SVG snapshots of the console (stored in `snapshots/`), at 80×24 and 160×48.

Every time on screen comes from the scripted station and the fixed clock, so the
pictures only change when the console does. After `--snapshot-update`, look at each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui import scenarios
from tests.tui.conftest import settle
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.tui.app import StationConsole

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


def snapshot_of(backend: ScriptedBackend, size: tuple[int, int], snap_compare: Callable[..., bool], *keys: str) -> bool:
    app = StationConsole(backend, clock=fixed_clock, status_interval=3600)

    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot, backend)
        for key in keys:
            await pilot.press(key)
        await settle(pilot, backend)

    return snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_idle_station(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    assert snapshot_of(ScriptedBackend(scenarios.idle_status()), size, snap_compare)


@pytest.mark.parametrize("size", SIZES)
def test_run_in_progress(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    assert snapshot_of(ScriptedBackend(scenarios.idle_status(), scenarios.run_in_progress()), size, snap_compare)


@pytest.mark.parametrize("size", SIZES)
def test_prompt_open(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    assert snapshot_of(ScriptedBackend(scenarios.idle_status(), scenarios.led_prompt()), size, snap_compare)


@pytest.mark.parametrize("size", SIZES)
def test_run_failed(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    assert snapshot_of(ScriptedBackend(scenarios.idle_status(), scenarios.run_failed()), size, snap_compare)


@pytest.mark.parametrize("size", SIZES)
def test_offline_with_queue_backlog(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    # Narrow terminals show the station view; the backlog's parked entry is selected.
    assert snapshot_of(ScriptedBackend(scenarios.offline_status()), size, snap_compare, "tab")


@pytest.mark.parametrize("size", SIZES)
def test_uptime_with_outages(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    status = scenarios.idle_status(uptime=scenarios.outage_uptime())
    assert snapshot_of(ScriptedBackend(status), size, snap_compare)


@pytest.mark.parametrize("size", SIZES)
def test_prompt_with_pictures(size: tuple[int, int], snap_compare: Callable[..., bool]) -> None:
    assert snapshot_of(ScriptedBackend(scenarios.idle_status(), scenarios.picture_prompt()), size, snap_compare)
