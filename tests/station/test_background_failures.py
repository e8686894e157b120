"""A bug in a background task is said in the log and the task goes on: never a loop that
silently stopped (uploads, presence) or a stream that only listens."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

import pytest

from tests.station.fakeserver import FakeServer
from tofu_tui.models.events import ErrorEvent, Event, PhaseLog
from tofu_tui.station import daemon as daemon_mod
from tofu_tui.station.api_client import ApiClient
from tofu_tui.station.bus import EventBus
from tofu_tui.station.daemon import StationDaemon
from tofu_tui.station.outbox import Item
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.stream import Presence


async def test_a_loop_that_crashes_or_returns_is_logged_and_started_again(paths: StationPaths,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "LOOP_RESTART_S", 0.01)
    log: list[tuple[str, str, dict[str, Any]]] = []
    station = StationDaemon(paths, say=lambda level, event, fields: log.append((level, event, fields)))
    calls = 0
    third = asyncio.Event()

    async def drain_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("queue row vanished")
        if calls == 3:
            third.set()
            await asyncio.Event().wait()  # a healthy loop: runs until cancelled

    task = asyncio.create_task(station._supervised("drain", drain_once))
    async with asyncio.timeout(10):
        await third.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(level, event) for level, event, _ in log] == [("error", "loop_crashed"), ("error", "loop_ended")]
    crashed = log[0][2]
    assert crashed["loop"] == "drain" and crashed["message"] == "RuntimeError: queue row vanished"
    assert "in drain_once" in crashed["traceback"]


async def _open(presence: Presence, connections: int) -> None:
    async with asyncio.timeout(15):
        while not (presence.stream_open and presence.connections >= connections):
            await asyncio.sleep(0.02)


async def _arrived(fake: FakeServer, message: str) -> None:
    async with asyncio.timeout(15):
        while not any(e.get("message") == message for e in fake.state.stream_events):
            await asyncio.sleep(0.02)


class _Unsendable:
    """Neither text nor bytes: the socket refuses it."""

    def __len__(self) -> int:
        return 1


def _presence(fake: FakeServer) -> Presence:
    key = fake.enroll_key()

    async def on_command(command: dict[str, Any]) -> None:
        pass

    return Presence(fake.url, key, ApiClient(fake.url, key), on_command=on_command,
                    on_connectivity=lambda up, detail: None, on_revoked=lambda m: None, heartbeat_body=dict)


async def test_an_event_that_cannot_be_sent_does_not_stop_the_ones_after_it(
        fake: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    presence = _presence(fake)
    task = asyncio.create_task(presence.run())
    try:
        await _open(presence, 1)
        # A message the socket refuses (a bug upstream of the sender), then a good event.
        presence.outbox.unsent(Item(order=0, rank=0, message=_Unsendable(), execution_id=""))  # type: ignore[arg-type]
        presence.publish(PhaseLog(message="after the bad one"))
        await _arrived(fake, "after the bad one")
        assert presence.connections == 1
    finally:
        task.cancel()
    assert "could not be sent to the dashboard and was dropped" in caplog.text
    assert "TypeError" in caplog.text


async def test_a_sender_that_dies_ends_the_connection_and_the_stream_comes_back(
        fake: FakeServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.ERROR, "tofu_tui.station.stream")
    monkeypatch.setattr("tofu_tui.station.stream.reconnect_delay", lambda failures: 0.05)
    presence = _presence(fake)
    take = presence.outbox.take
    broken = [True]

    def take_once_broken() -> Item | None:
        if broken[0]:
            broken[0] = False
            raise IndexError("outbox bookkeeping bug")
        return take()

    task = asyncio.create_task(presence.run())
    try:
        await _open(presence, 1)
        monkeypatch.setattr(presence.outbox, "take", take_once_broken)
        presence.publish(PhaseLog(message="survives the crash"))
        await _open(presence, 2)  # the dead sender ended the connection: a new one sends again
        await _arrived(fake, "survives the crash")
    finally:
        task.cancel()
    assert "the dashboard stream's sender failed; reconnecting" in caplog.text
    assert "IndexError: outbox bookkeeping bug" in caplog.text


async def test_a_bug_in_a_dashboard_command_is_logged_and_reported_not_raised(
        paths: StationPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    """A raise here would end the dashboard stream that carried the command."""
    log: list[tuple[str, str, dict[str, Any]]] = []
    station = StationDaemon(paths, say=lambda level, event, fields: log.append((level, event, fields)))
    station.bus = EventBus(asyncio.get_running_loop())
    published: list[Event] = []
    station.bus.add_sink(published.append)

    async def broken(command: Any) -> dict[str, Any]:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(station, "handle_command", broken)
    await station._remote_command({"name": "Pull", "id": "cmd-1"})
    failed = [fields for level, event, fields in log if event == "command_failed"]
    assert len(failed) == 1 and failed[0]["id"] == "cmd-1" and "in broken" in failed[0]["traceback"]
    (error,) = [e for e in published if isinstance(e, ErrorEvent)]
    assert "Pull: the station failed to carry it out (OperationalError: database is locked)" in error.message
