"""Fixtures for station tests: a station home, a fake server with fault injection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.station.fakeserver import FakeServer
from tofu_tui.station.paths import StationPaths, station_paths


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "station"


@pytest.fixture
def paths(home: Path) -> StationPaths:
    return station_paths(home).ensure()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()
