"""api.md, Presence: what the station's stream code sends (events shrunk under the 60 kB
cap) is what the real server takes, and the connection survives it."""

from __future__ import annotations

import json

from tests.server.conftest import Server
from tests.server.test_presence import open_stream, receive_until, sync
from tofu_tui.models.events import PhaseLog, RunFinished
from tofu_tui.station.stream import encode_event


def test_events_the_station_shrinks_are_stored_and_the_stream_stays_open(server: Server) -> None:
    station_id = server.station()
    procedure_id = server.procedure()
    server.link(station_id, procedure_id)
    key = server.enroll(station_id)["api_key"]
    huge_log = PhaseLog(execution_id="e1", seq=2, message="x" * 300_000)
    logs = [{"level": "INFO", "timestamp": "2026-03-10T11:00:00Z", "message": f"line {i} " + "y" * 300} for i in range(3000)]
    huge_run = RunFinished(execution_id="e1", seq=3, outcome="PASS", run={"outcome": "PASS", "serial_number": "SN1", "logs": logs})
    with open_stream(server, key) as ws:
        sync(ws)
        for event in (huge_log, huge_run):
            message = encode_event(event)
            assert len(message.encode()) <= 60 * 1000
            ws.send(message)
        before_pong = sync(ws)
        assert [m for m in before_pong if m["type"] == "error"] == []
        # Still connected: a command sent now arrives on this stream.
        sent = server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": "Stop"})
        assert sent.status_code == 202 and sent.json()["delivered"] is True
        assert receive_until(ws, "command")[0]["command"] == {"name": "Stop", "id": sent.json()["id"]}
    stored = server.admin.get(f"/api/v2/stations/{station_id}/events").json()["data"]
    assert [e["type"] for e in stored] == ["phase_log", "run_finished"]
    assert "characters cut" in stored[0]["event"]["message"]
    assert stored[1]["event"]["run"]["logs"][-1]["message"].startswith("line 2999")
    assert len(json.dumps(stored[1]["event"])) < 60_000


def test_a_stream_whose_key_is_revoked_is_closed_at_once(server: Server) -> None:
    import pytest
    from websockets.exceptions import ConnectionClosed

    kept, renewed, removed = server.station("kept"), server.station("renewed"), server.station("removed")
    keys = {s: server.enroll(s)["api_key"] for s in (kept, renewed, removed)}
    streams = {s: open_stream(server, key) for s, key in keys.items()}
    try:
        for ws in streams.values():
            sync(ws)
        new_key = server.enroll(renewed)["api_key"]  # a new setup token replaces the key
        assert server.admin.delete(f"/api/v2/stations/{removed}").status_code == 200
        for station_id in (renewed, removed):
            with pytest.raises(ConnectionClosed) as closed:
                receive_until(streams[station_id], "never", timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            assert "revoked" in closed.value.rcvd.reason
        sync(streams[kept])  # the others are untouched
        with open_stream(server, new_key) as ws:
            sync(ws)
    finally:
        for ws in streams.values():
            ws.close()
