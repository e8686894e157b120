"""A bug while the daemon handles a request is answered and logged, never a dropped connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tofu_tui.models.commands import Command, KillCommand, PullCommand, QueueRetryCommand
from tofu_tui.models.events import Event
from tofu_tui.models.status import StationStatus
from tofu_tui.station.control import (
    CommandRefused,
    ControlClient,
    ControlError,
    ControlServer,
    send_command,
)
from tofu_tui.station.paths import StationPaths, station_paths


class _Handler:
    """The daemon's side of the socket; `Pull` and the first status hit a bug."""

    def __init__(self) -> None:
        self.status_calls = 0

    def status(self) -> StationStatus:
        self.status_calls += 1
        if self.status_calls == 1:
            raise KeyError("procedures")
        return StationStatus(station_name="bench")

    async def handle_command(self, command: Command) -> dict[str, Any]:
        if isinstance(command, PullCommand):
            return broken_pull()
        if isinstance(command, QueueRetryCommand):
            raise CommandRefused("No queue entry 7.")
        return {"fine": True}

    def subscribe(self) -> asyncio.Queue[Event | None]:
        return asyncio.Queue()

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        pass


def broken_pull() -> dict[str, Any]:
    raise RuntimeError("database is locked")


async def _scenario(paths: StationPaths, log: list[tuple[str, str, dict[str, Any]]]) -> None:
    server = ControlServer(paths, _Handler(), say=lambda level, event, fields: log.append((level, event, fields)))
    await server.start()
    try:
        async with ControlClient(paths) as client:
            with pytest.raises(CommandRefused) as refused:
                await client.command(PullCommand())
            message = str(refused.value)
            assert "failed to handle the Pull command (RuntimeError: database is locked)" in message
            assert "try again" in message and "daemon's log" in message
            # Same connection: still answered, refusals still plain refusals.
            assert client.alive
            with pytest.raises(CommandRefused, match=r"^No queue entry 7\.$"):
                await client.command(QueueRetryCommand(queue_id=7))
            assert await client.command(KillCommand()) == {"fine": True}
            with pytest.raises(ControlError, match="failed to handle the status"):
                await client.status()
            assert (await client.status()).station_name == "bench"
            assert client.alive
        # The CLI's one-shot client gets the same plain sentence.
        with pytest.raises(CommandRefused, match="failed to handle the Pull command"):
            await asyncio.to_thread(send_command, paths, PullCommand(), 10)
    finally:
        await server.close()


def test_a_bug_in_a_command_is_answered_logged_and_the_connection_kept(tmp_path: Path) -> None:
    paths = station_paths(tmp_path / "station").ensure()
    log: list[tuple[str, str, dict[str, Any]]] = []
    asyncio.run(_scenario(paths, log))
    failures = [fields for level, event, fields in log if level == "error" and event == "control_request_failed"]
    assert [f["request"] for f in failures] == ["Pull command", "status", "Pull command"]
    assert "in broken_pull" in failures[0]["traceback"]
    assert "RuntimeError: database is locked" in failures[0]["traceback"]
    assert "KeyError: 'procedures'" in failures[1]["traceback"]


class _BrokenEvent:
    """Not an event: forwarding it fails, as a bug in an event's serialization would."""

    execution_id = ""


async def _events_scenario(paths: StationPaths, log: list[tuple[str, str, dict[str, Any]]]) -> None:
    handler = _Handler()
    queues: list[asyncio.Queue[Any]] = []

    def subscribe() -> asyncio.Queue[Any]:
        queues.append(asyncio.Queue())
        return queues[-1]

    handler.subscribe = subscribe  # type: ignore[method-assign]
    server = ControlServer(paths, handler, say=lambda level, event, fields: log.append((level, event, fields)))
    await server.start()
    try:
        async with ControlClient(paths) as client:
            await client.subscribe()
            queues[0].put_nowait(_BrokenEvent())
            # The client is told (the connection ends) instead of waiting for events forever.
            async with asyncio.timeout(10):
                assert [event async for event in client.events()] == []
            assert not client.alive
    finally:
        await server.close()


def test_events_that_stop_going_out_are_logged_and_the_client_told(tmp_path: Path) -> None:
    paths = station_paths(tmp_path / "station").ensure()
    log: list[tuple[str, str, dict[str, Any]]] = []
    asyncio.run(_events_scenario(paths, log))
    (failure,) = [fields for level, event, fields in log if event == "control_events_failed"]
    assert "AttributeError" in failure["message"] and "_forward" in failure["traceback"]
