"""The real local server on a free loopback port, for any test that needs a dashboard.

Use it as a pytest plugin (`pytest_plugins = ["tests.server.fixtures"]` in a conftest)
or call `start_server` directly:

    def test_x(running_server):
        url, admin_key, data_dir = running_server
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tofu_tui.server.admin import create_user_key
from tofu_tui.server.runner import ServerThread
from tofu_tui.server.settings import Settings


class FakeClock:
    """A clock tests move by hand (token expiry, uptime)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@contextmanager
def start_server(
    data_dir: Path, *, clock: Callable[[], datetime] | None = None, **settings: Any
) -> Iterator[tuple[str, str, Path, ServerThread]]:
    """Start the server on a free loopback port; yield (url, admin_key, data_dir, handle)."""
    options: dict[str, Any] = dict(settings)
    if clock is not None:
        options["clock"] = clock
    config = Settings(data_dir=data_dir, **options)
    key = create_user_key(config, name="tests")
    with ServerThread(config) as handle:
        yield handle.url, key, data_dir, handle


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    with start_server(tmp_path / "server") as (url, key, data_dir, _handle):
        yield url, key, data_dir
