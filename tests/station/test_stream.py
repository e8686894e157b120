"""Presence: the 60 kB cap, reconnect backoff, and the heartbeat fallback against a
real HTTP server whose WebSocket endpoint is unavailable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.station.fakeserver import FakeServer
from tofu_tui.models.events import PhaseLog, RunFinished, parse_event
from tofu_tui.station.api_client import ApiClient
from tofu_tui.station.stream import MAX_MESSAGE_BYTES, Presence, encode_event, reconnect_delay


def test_large_events_are_shrunk_under_the_cap_and_stay_valid() -> None:
    log = PhaseLog(execution_id="e", seq=3, message="x" * 200_000)
    message = encode_event(log)
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    parsed = parse_event(json.loads(message)["event"])
    assert isinstance(parsed, PhaseLog) and parsed.seq == 3 and "characters cut" in parsed.message

    logs = [{"level": "INFO", "timestamp": "2026-01-01T00:00:00Z", "message": f"line {i} " + "y" * 200}
            for i in range(5000)]
    finished = RunFinished(execution_id="e", seq=9, outcome="PASS",
                           run={"outcome": "PASS", "serial_number": "SN1", "logs": logs})
    message = encode_event(finished)
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    parsed_run = parse_event(json.loads(message)["event"])
    assert isinstance(parsed_run, RunFinished) and parsed_run.run["serial_number"] == "SN1"
    assert parsed_run.run["logs"][-1]["message"].startswith("line 4999")  # the latest lines kept

    small = PhaseLog(message="hello")
    assert json.loads(encode_event(small))["event"]["message"] == "hello"


def test_reconnect_backoff_is_jittered_from_1_to_60_seconds() -> None:
    assert [reconnect_delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]
    assert reconnect_delay(1, rand=lambda: 0.0) == 0.5
    assert reconnect_delay(20, rand=lambda: 0.0) == 30


async def test_heartbeat_fallback_reports_presence_and_delivers_commands(fake: FakeServer) -> None:
    key = fake.enroll_key()
    fake.state.pending_commands.append({"name": "Pull"})
    received: list[dict[str, Any]] = []
    connectivity: list[bool] = []

    async def on_command(command: dict[str, Any]) -> None:
        received.append(command)

    # The stream endpoint does not exist at this path: the station falls back to HTTP.
    presence = Presence(fake.url + "/no-websocket-here", key, ApiClient(fake.url, key), on_command=on_command,
                        on_connectivity=lambda up, detail: connectivity.append(up),
                        on_revoked=lambda m: None,
                        heartbeat_body=lambda: {"status": "idle", "cli_version": "t", "active_deployments": [],
                                                "queue": {"pending": 2, "parked": 1}})
    task = asyncio.create_task(presence.run())
    try:
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert received == [{"name": "Pull"}]
    assert fake.state.heartbeats[0]["queue"] == {"pending": 2, "parked": 1}
    assert connectivity == [True] and presence.connected and not presence.stream_open


async def test_stream_carries_events_out_and_commands_in(fake: FakeServer) -> None:
    key = fake.enroll_key()
    received: list[dict[str, Any]] = []

    async def on_command(command: dict[str, Any]) -> None:
        received.append(command)

    presence = Presence(fake.url, key, ApiClient(fake.url, key), on_command=on_command,
                        on_connectivity=lambda up, detail: None, on_revoked=lambda m: None,
                        heartbeat_body=dict)
    task = asyncio.create_task(presence.run())
    try:
        for _ in range(200):
            if presence.stream_open:
                break
            await asyncio.sleep(0.05)
        presence.publish(PhaseLog(message="live"))
        fake.state.pending_commands.append({"name": "Stop"})
        for _ in range(200):
            if received and fake.state.stream_events:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert fake.state.stream_events[0]["message"] == "live"
    assert received == [{"name": "Stop"}]
