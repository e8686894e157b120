"""The station stream, commands, the heartbeat fallback and 90-day uptime."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.server.conftest import FakeClock, Server
from tofu_tui.server import db
from tofu_tui.server.uptime import daily_uptime


def open_stream(server: Server, key: str) -> ClientConnection:
    ws = connect(server.url.replace("http", "ws") + "/api/cli/stream", additional_headers={"Authorization": f"Bearer {key}"})
    return ws


def receive_until(ws: ClientConnection, kind: str, timeout: float = 10) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message of `kind`, and the messages before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message, before
        before.append(message)


def sync(ws: ClientConnection) -> list[dict[str, Any]]:
    """Round-trip a ping: everything the server did before it answered is done."""
    ws.send(json.dumps({"type": "ping"}))
    return receive_until(ws, "pong")[1]


def wait_closed(server: Server, station_id: str) -> None:
    state = server.handle.app.state.server
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with state.sessions() as session:
            rows = session.execute(select(db.Presence).where(db.Presence.station_id == station_id, db.Presence.ended_at.is_(None))).all()
        if not rows and not state.hub.connected(station_id):
            return
        time.sleep(0.02)
    raise AssertionError("the stream did not close")


@pytest.fixture
def enrolled(server: Server) -> tuple[str, str, str]:
    station_id = server.station()
    procedure_id = server.procedure()
    server.link(station_id, procedure_id)
    return station_id, procedure_id, server.enroll(station_id)["api_key"]


def test_stream_stores_events_and_delivers_commands(server: Server, enrolled: tuple[str, str, str]) -> None:
    station_id, procedure_id, key = enrolled
    with open_stream(server, key) as ws:
        queued_while_away = sync(ws)
        # The Pull from linking was queued before the stream opened: delivered on connect.
        assert [m["command"]["name"] for m in queued_while_away] == ["Pull"]
        assert server.admin.get(f"/api/v2/stations/{station_id}").json()["connection_status"] == "connected"

        event = {"type": "phase_started", "execution_id": "e1", "seq": 2, "phase_key": "power", "phase_name": "Power"}
        ws.send(json.dumps({"type": "event", "event": event}))
        sync(ws)
        events = server.admin.get(f"/api/v2/stations/{station_id}/events").json()["data"]
        assert [(e["type"], e["event"]) for e in events] == [("phase_started", event)]

        sent = server.admin.post(
            f"/api/v2/stations/{station_id}/commands",
            json={"name": "Run", "procedure_id": procedure_id, "serial_number": "SN-9", "ui_values": {"identify": {"serial_number": "SN-9"}}},
        )
        assert sent.status_code == 202 and sent.json()["delivered"] is True
        command, _ = receive_until(ws, "command")
        assert command["command"] == {
            "name": "Run", "id": sent.json()["id"], "procedure_id": procedure_id, "serial_number": "SN-9",
            "ui_values": {"identify": {"serial_number": "SN-9"}},
        }
        # Delivered when acknowledged (until then the next connection or heartbeat repeats it).
        acked = [queued_while_away[0]["command"]["id"], command["command"]["id"]]
        ws.send(json.dumps({"type": "ack", "ids": acked}))
        sync(ws)
    # Acknowledged: the heartbeat does not repeat it.
    heartbeat = server.client(key).post("/api/cli/heartbeat", json={"status": "idle", "cli_version": "0.1", "active_deployments": [], "queue": {"pending": 0, "parked": 0}})
    assert heartbeat.status_code == 200 and heartbeat.json()["commands"] == []


def test_commands_wait_for_the_next_heartbeat(server: Server, enrolled: tuple[str, str, str]) -> None:
    station_id, _procedure_id, key = enrolled
    sent = server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": "Stop"})
    assert sent.status_code == 202 and sent.json()["delivered"] is False
    station = server.client(key)
    first = station.post("/api/cli/heartbeat", json={"status": "idle", "queue": {"pending": 2, "parked": 1}}).json()
    assert [c["name"] for c in first["commands"]] == ["Pull", "Stop"]
    assert first["commands"][1]["id"] == sent.json()["id"]
    assert station.post("/api/cli/heartbeat", json={}).json()["commands"] == []


def test_unknown_command_and_run_of_unlinked_procedure_are_refused(server: Server, enrolled: tuple[str, str, str]) -> None:
    station_id, _procedure_id, _key = enrolled
    assert server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": "Explode"}).status_code == 422
    other = server.procedure("other")
    refused = server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": "Run", "procedure_id": other})
    assert refused.status_code == 409 and refused.json()["code"] == "not_linked"
    huge = {"name": "Run", "procedure_id": _procedure_id, "ui_values": {"identify": {"note": "x" * 70_000}}}
    too_big = server.admin.post(f"/api/v2/stations/{station_id}/commands", json=huge)
    assert too_big.status_code == 422 and too_big.json()["code"] == "command_too_large"


def test_oversized_and_malformed_messages_do_not_break_the_stream(server: Server, enrolled: tuple[str, str, str]) -> None:
    station_id, _procedure_id, key = enrolled
    with open_stream(server, key) as ws:
        sync(ws)
        big = {"type": "event", "event": {"type": "phase_log", "message": "x" * 70_000}}
        ws.send(json.dumps(big))
        error, _ = receive_until(ws, "error")
        assert error["code"] == "message_too_large"
        ws.send("{not json")
        assert receive_until(ws, "error")[0]["code"] == "invalid_json"
        ws.send(json.dumps({"type": "event", "event": {"type": "connectivity_changed", "online": True}}))
        sync(ws)
    types = [e["type"] for e in server.admin.get(f"/api/v2/stations/{station_id}/events").json()["data"]]
    assert types == ["connectivity_changed"]


def test_stream_refuses_bad_keys(server: Server, enrolled: tuple[str, str, str]) -> None:
    for key in ["nope", server.key]:
        with open_stream(server, key) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code in (4401, 4403)


def test_unlinking_notifies_the_station(server: Server, enrolled: tuple[str, str, str]) -> None:
    station_id, procedure_id, key = enrolled
    with open_stream(server, key) as ws:
        sync(ws)
        assert server.admin.delete(f"/api/v2/stations/{station_id}/procedures/{procedure_id}").status_code == 200
        assert receive_until(ws, "command")[0]["command"]["name"] == "Pull"
    assert server.client(key).get("/api/v2/stations/current").json()["procedures"] == []


def test_uptime_from_stream_and_heartbeats(server: Server, clock: FakeClock, enrolled: tuple[str, str, str]) -> None:
    station_id, _procedure_id, key = enrolled  # created 2026-03-10 12:00 UTC
    station = server.client(key)

    def stream_for(start: datetime, end: datetime) -> None:
        clock.set(start)
        with open_stream(server, key) as ws:
            sync(ws)
            clock.set(end)
        wait_closed(server, station_id)

    stream_for(datetime(2026, 3, 10, 12, tzinfo=UTC), datetime(2026, 3, 10, 18, tzinfo=UTC))
    # Heartbeats every 90 s (the grace) from 00:00 to 03:00 on the 11th: one interval.
    beat = datetime(2026, 3, 11, 0, tzinfo=UTC)
    while beat <= datetime(2026, 3, 11, 3, tzinfo=UTC):
        clock.set(beat)
        assert station.post("/api/cli/heartbeat", json={"status": "idle"}).status_code == 200
        beat += timedelta(seconds=90)
    stream_for(datetime(2026, 3, 11, 20, tzinfo=UTC), datetime(2026, 3, 12, 2, tzinfo=UTC))
    clock.set(datetime(2026, 3, 12, 6, tzinfo=UTC))

    body = server.admin.get(f"/api/v2/stations/{station_id}/uptime", params={"days": 4}).json()
    assert body["days"] == [
        {"date": "2026-03-09", "uptime": None},
        {"date": "2026-03-10", "uptime": 0.5},
        {"date": "2026-03-11", "uptime": 7 / 24},
        {"date": "2026-03-12", "uptime": 2 / 6},
    ]
    assert body["connection_status"] == "disconnected"
    assert len(server.admin.get(f"/api/v2/stations/{station_id}/uptime").json()["days"]) == 90


def test_daily_uptime_rules() -> None:
    created = datetime(2026, 1, 1, 6, tzinfo=UTC)
    now = datetime(2026, 1, 3, 12, tzinfo=UTC)
    intervals = [
        (datetime(2026, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)),
        (datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 1, 15, tzinfo=UTC)),  # overlaps: counted once
        (datetime(2026, 1, 3, 6, tzinfo=UTC), None),  # still open: until now
    ]
    assert daily_uptime(intervals, created_at=created, now=now, days=4) == [
        (date(2025, 12, 31), None),
        (date(2026, 1, 1), 9 / 18),
        (date(2026, 1, 2), 0.0),
        (date(2026, 1, 3), 0.5),
    ]


def test_idle_stream_is_pinged_and_keeps_the_station_seen(tmp_path: object, clock: FakeClock) -> None:
    from pathlib import Path

    import httpx

    from tests.server.fixtures import start_server

    with start_server(Path(str(tmp_path)) / "fast", clock=clock, ws_ping_interval=0.3) as (url, key, _d, handle):
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        station_id = admin.post("/api/v2/stations", json={"name": "b"}).json()["id"]
        token = admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"]
        station_key = httpx.post(url + "/api/cli/login/redeem", json={"token": token}).json()["api_key"]
        server = Server(url, key, Path(str(tmp_path)), admin, clock, handle)
        with open_stream(server, station_key) as ws:
            sync(ws)
            clock.advance(minutes=5)
            assert receive_until(ws, "ping", timeout=10)[0] == {"type": "ping"}
            sync(ws)
            seen = admin.get(f"/api/v2/stations/{station_id}").json()["last_seen_at"]
            assert seen == clock.now.isoformat().replace("+00:00", "Z")


def test_repository_names_for_display() -> None:
    from tofu_tui.server.gitrepo import describe

    assert describe("https://github.com/acme/fvt.git") == describe("git@github.com:acme/fvt.git")
    assert (describe("https://gitlab.example.com/hw/bench/fvt").owner, describe("https://gitlab.example.com/hw/bench/fvt").provider) == ("bench", "gitlab")
    local = describe("/srv/git/procedures/fvt")
    assert (local.owner, local.name) == ("procedures", "fvt")


def test_a_stream_left_open_by_a_crash_ends_at_its_last_sign_of_life(tmp_path: object) -> None:
    from pathlib import Path

    from tofu_tui.server.migrate import upgrade
    from tofu_tui.server.settings import Settings
    from tofu_tui.server.state import ServerState

    settings = Settings(data_dir=Path(str(tmp_path)) / "crash")
    settings.data_dir.mkdir()
    upgrade(settings.database_url)
    seen = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    crashed = ServerState(settings)
    with crashed.sessions() as session:
        session.add(db.Station(id="s1", name="b", created_at=datetime(2026, 3, 10, 12, tzinfo=UTC), last_seen_at=seen))
        session.flush()
        session.add(db.Presence(station_id="s1", kind="stream", started_at=datetime(2026, 3, 10, 13, tzinfo=UTC), ended_at=None))
        session.commit()
    crashed.dispose()

    restarted = ServerState(settings)
    restarted.startup()
    with restarted.sessions() as session:
        assert session.execute(select(db.Presence.ended_at)).scalar_one() == seen
    restarted.dispose()
