"""Starting the console: attach to the daemon, else run in process, else say why."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.tui import scenarios
from tests.tui.scripted import ScriptedBackend
from tofu_tui.tui import launch
from tofu_tui.tui.backend import BackendUnavailable, StationBackend


@pytest.fixture
def adapters() -> Iterator[dict[str, types.ModuleType]]:
    installed: dict[str, types.ModuleType] = {}
    yield installed
    for name in installed:
        sys.modules.pop(name, None)


def install(adapters: dict[str, types.ModuleType], name: str, **functions: object) -> None:
    module = types.ModuleType(name)
    for attribute, value in functions.items():
        setattr(module, attribute, value)
    sys.modules[name] = module
    adapters[name] = module


async def test_console_without_any_station_adapter_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules: the import fails as if the adapter were not installed.
    monkeypatch.setitem(sys.modules, launch.DAEMON_ADAPTER, None)
    monkeypatch.setitem(sys.modules, launch.LOCAL_ADAPTER, None)
    with pytest.raises(BackendUnavailable, match="cannot reach a station yet") as raised:
        await launch.open_backend()
    assert "tofu-tui --headless" in str(raised.value)


def test_console_of_a_station_not_enrolled_says_to_log_in(tmp_path: Path) -> None:
    result = run_cli([], timeout=60, env={"TOFU_TUI_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "tofu-tui login --token" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_running_daemon_is_attached_to(adapters: dict[str, types.ModuleType]) -> None:
    daemon = ScriptedBackend(scenarios.idle_status(), mode="attached")
    local = ScriptedBackend(scenarios.idle_status(), mode="in-process")
    install(adapters, launch.DAEMON_ADAPTER, connect=lambda: daemon)
    install(adapters, launch.LOCAL_ADAPTER, start=lambda: local)
    backend = await launch.open_backend()
    assert backend is daemon
    assert isinstance(backend, StationBackend)


async def test_without_a_daemon_the_station_runs_in_process(adapters: dict[str, types.ModuleType]) -> None:
    local = ScriptedBackend(scenarios.idle_status(), mode="in-process")

    async def start() -> ScriptedBackend:
        return local

    install(adapters, launch.DAEMON_ADAPTER, connect=lambda: None)
    install(adapters, launch.LOCAL_ADAPTER, start=start)
    assert await launch.open_backend() is local


async def test_no_daemon_and_no_in_process_engine_is_explained(adapters: dict[str, types.ModuleType],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    install(adapters, launch.DAEMON_ADAPTER, connect=lambda: None)
    monkeypatch.setitem(sys.modules, launch.LOCAL_ADAPTER, None)
    with pytest.raises(BackendUnavailable, match="No station daemon is running"):
        await launch.open_backend()
