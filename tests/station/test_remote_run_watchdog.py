"""§8 "no event after submit": a daemon that accepts a run and then says nothing of it
gets the run killed, and the operator a clear message, instead of a terminal that waits
forever."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tofu_tui.models.commands import Command, KillCommand, RunCommand
from tofu_tui.models.events import Event, PhaseLog, RunFinished, RunStarted
from tofu_tui.models.status import StationStatus
from tofu_tui.station.control import ControlError, ControlServer
from tofu_tui.station.paths import station_paths
from tofu_tui.station.remote_run import run_via_daemon


class _Daemon:
    """The daemon's side of the control socket (the real ControlServer), with an engine
    that accepts a run and then emits `script` (nothing, for a wedged engine)."""

    def __init__(self, script: list[Event]) -> None:
        self.script = script
        self.commands: list[Command] = []
        self.queues: list[asyncio.Queue[Event | None]] = []

    def status(self) -> StationStatus:
        raise NotImplementedError

    async def handle_command(self, command: Command) -> dict[str, Any]:
        self.commands.append(command)
        if isinstance(command, RunCommand):
            for event in self.script:
                for queue in self.queues:
                    queue.put_nowait(event)
            return {"execution_id": "exec-1"}
        return {}

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self.queues.remove(queue)


async def _follow(home: Path, daemon: _Daemon, first_event_s: float) -> RunFinished:
    paths = station_paths(home).ensure()
    server = ControlServer(paths, daemon)
    await server.start()
    try:
        seen: list[Event] = []
        return await run_via_daemon(paths, RunCommand(procedure_id="p"), seen.append, first_event_s=first_event_s)
    finally:
        await server.close()


def test_a_run_without_any_event_is_killed_with_a_clear_message(tmp_path: Path) -> None:
    daemon = _Daemon(script=[])
    with pytest.raises(ControlError, match=r"sent no event of it for 0\.3 s; the run was killed"):
        asyncio.run(_follow(tmp_path, daemon, first_event_s=0.3))
    assert [type(c) for c in daemon.commands] == [RunCommand, KillCommand]


def test_only_the_first_event_is_bounded(tmp_path: Path) -> None:
    """Once the run speaks, a long quiet phase is normal and is never cut short here."""
    events: list[Event] = [
        RunStarted(execution_id="exec-1", seq=1, procedure={"name": "p"}, unit={}),  # type: ignore[arg-type]
        PhaseLog(execution_id="exec-1", seq=2, phase_key="a", level="INFO", message="working"),
    ]
    daemon = _Daemon(script=events)

    async def main() -> RunFinished:
        task = asyncio.ensure_future(_follow(tmp_path, daemon, first_event_s=0.2))
        await asyncio.sleep(0.6)  # three times the bound, with no event after the first ones
        assert not task.done()
        for queue in daemon.queues:
            queue.put_nowait(RunFinished(execution_id="exec-1", seq=3, outcome="PASS", run={}))
        return await task

    finished = asyncio.run(main())
    assert finished.outcome == "PASS"
    assert [type(c) for c in daemon.commands] == [RunCommand]
