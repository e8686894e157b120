"""Commands from the dashboard arrive at least once and run at most once, against the
real server: a command whose ack never reached the server is sent again (on the next
connection or heartbeat), and the station, restarted meanwhile, drops the repeat."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll
from tofu_tui.station import state_db
from tofu_tui.station.config import load_credentials
from tofu_tui.station.enroll import client_for
from tofu_tui.station.paths import station_paths
from tofu_tui.station.seen_commands import SeenCommands
from tofu_tui.station.stream import Presence, stream_url


def _delivered(server: RealServer) -> dict[str, bool]:
    with sqlite3.connect(server.data / "server.db") as db:
        return {row[0]: row[1] is not None for row in db.execute("SELECT id, delivered_at FROM commands")}


def _command(server: RealServer, station_id: str, name: str) -> str:
    return str(server.call("POST", f"/v2/stations/{station_id}/commands", {"name": name})["id"])


async def _until(condition: Callable[[], Any], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


class _LostAcks(Presence):
    """A connection that drops every ack on the floor, as a cut network would."""

    async def _ack(self, ws: Any, ids: list[str]) -> None:
        return None


async def test_unacknowledged_command_is_resent_and_run_once_across_a_restart(server: RealServer, home: Path) -> None:
    station_id = enroll(server, home)
    paths = station_paths(home)
    config, client = client_for(paths)
    api_key = load_credentials(paths).api_key.get_secret_value()
    received: list[str] = []

    async def on_command(command: dict[str, Any]) -> None:
        received.append(command["id"])

    def presence(cls: type[Presence]) -> Presence:
        return cls(config.server_url, api_key, client, on_command=on_command, on_connectivity=lambda up, why: None,
                   on_revoked=lambda message: None, heartbeat_body=dict,
                   seen=SeenCommands(state_db.connect(paths.state_db)))

    pull = _command(server, station_id, "Pull")
    first = presence(_LostAcks)
    task = asyncio.create_task(first.run())
    try:
        await _until(lambda: received == [pull], "the command on the stream")
    finally:
        task.cancel()
    assert _delivered(server) == {pull: False}  # sent, but never acknowledged

    # The daemon restarted: a new process, the same state.db.
    second = presence(Presence)
    task = asyncio.create_task(second.run())
    try:
        await _until(lambda: _delivered(server) == {pull: True}, "the repeat acknowledged")
        stop = _command(server, station_id, "Stop")
        await _until(lambda: stop in received, "the next command")
        # The station acks before it acts; the server records the ack a moment later.
        await _until(lambda: _delivered(server) == {pull: True, stop: True}, "the next command acknowledged")
    finally:
        task.cancel()
    assert received == [pull, stop]  # the repeat was acknowledged and dropped, not run again
    assert _delivered(server) == {pull: True, stop: True}


async def test_server_resends_until_acknowledged_on_stream_and_heartbeat(server: RealServer, home: Path) -> None:
    station_id = enroll(server, home)
    paths = station_paths(home)
    _config, client = client_for(paths)
    headers = {"Authorization": f"Bearer {load_credentials(paths).api_key.get_secret_value()}"}

    async def first_command(ack: bool) -> dict[str, Any]:
        async with connect(stream_url(server.url), additional_headers=headers) as ws:
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "command":
                    if ack:
                        await ws.send(json.dumps({"type": "ack", "ids": [message["command"]["id"]]}))
                        await ws.send(json.dumps({"type": "ping"}))
                        while json.loads(await ws.recv())["type"] != "pong":  # the ack was processed
                            pass
                    return dict(message["command"])

    x = _command(server, station_id, "Pull")
    assert (await first_command(ack=False))["id"] == x
    assert (await first_command(ack=False))["id"] == x  # the dropped connection lost nothing
    assert (await first_command(ack=True))["id"] == x
    y = _command(server, station_id, "Stop")
    assert (await first_command(ack=True))["id"] == y  # x is not sent a fourth time

    def beat(acks: list[str] | None) -> list[str]:
        body: dict[str, Any] = {"status": "idle"} if acks is None else {"status": "idle", "acks": acks}
        return [c["id"] for c in client.heartbeat(body).commands]

    z = _command(server, station_id, "Pull")
    assert beat([]) == [z]
    assert beat([]) == [z]  # the reply was lost: the next heartbeat carries it again
    assert beat([z]) == []
    w = _command(server, station_id, "Pull")
    assert beat(None) == [w] and beat(None) == []  # a station that never acks gets each command once
