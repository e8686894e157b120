"""api.md, Configuration and Stations: the shapes a station and an admin read, station
CRUD rules, linking and commands (202, delivered on the stream or the next heartbeat)."""

from __future__ import annotations

from pathlib import Path

from tofupilot.v2 import TofuPilot

from tests.server.conftest import Server, make_repo

STATION_FIELDS = {"id", "name", "api_key", "procedures", "organization_slug", "connection_status", "team"}


def test_stations_current_has_every_listed_field(server: Server, tmp_path: Path) -> None:
    _repo, sha = make_repo(tmp_path / "repo", {"fvt/procedure.yaml": "name: FVT\n"}, message="release")
    station_id = server.station("Bench A")
    linked = server.procedure("FVT", {"url": str(tmp_path / "repo"), "branch": "main", "path": "fvt"})
    undeployed = server.procedure("Burn-in")
    server.link(station_id, linked)
    server.link(station_id, undeployed)
    dep = server.admin.post("/api/v2/deployments", json={"procedure_id": linked}).json()
    key = server.enroll(station_id)["api_key"]
    current = server.client(key).get("/api/v2/stations/current")
    assert current.status_code == 200
    body = current.json()
    assert {"id", "name", "organization_slug", "connection_status", "procedures"} <= set(body)
    assert (body["id"], body["name"], body["organization_slug"]) == (station_id, "Bench A", "local")
    assert body["connection_status"] in ("connected", "disconnected")
    by_id = {p["id"]: p for p in body["procedures"]}
    assert set(by_id) == {linked, undeployed}
    for p in by_id.values():
        assert {"id", "identifier", "name", "runs_count", "deployment"} <= set(p)
    assert by_id[undeployed]["deployment"] is None
    deployment = by_id[linked]["deployment"]
    assert {"id", "deployed_at", "commit", "repository", "path"} <= set(deployment)
    assert deployment["id"] == dep["id"] and deployment["path"] == "fvt"
    assert deployment["deployed_at"].endswith(("Z", "+00:00"))
    assert {"sha", "message", "branch"} <= set(deployment["commit"])
    assert (deployment["commit"]["sha"], deployment["commit"]["message"], deployment["commit"]["branch"]) == (sha, "release", "main")
    assert {"url", "owner", "name", "provider"} <= set(deployment["repository"])
    assert deployment["repository"]["url"] == str(tmp_path / "repo")
    # A user key has no "current" station.
    assert server.admin.get("/api/v2/stations/current").status_code == 403


def test_station_get_shows_only_the_key_prefix(server: Server) -> None:
    station_id = server.station("Bench A")
    before = server.admin.get(f"/api/v2/stations/{station_id}").json()
    assert set(before) >= STATION_FIELDS
    assert before["api_key"] is None and before["team"] is None and before["procedures"] == []
    key = server.enroll(station_id)["api_key"]
    after = server.admin.get(f"/api/v2/stations/{station_id}").json()
    assert after["api_key"] and after["api_key"] != key
    assert key.startswith(after["api_key"].rstrip("…")) and len(after["api_key"].rstrip("…")) < len(key) // 2
    assert key not in server.admin.get(f"/api/v2/stations/{station_id}").text
    assert key not in server.admin.get("/api/v2/stations").text
    # The official client parses it.
    client = TofuPilot(api_key=server.key, server_url=server.url + "/api")  # kept: it closes when collected
    got = client.stations.get(id=station_id)
    assert got.api_key == after["api_key"] and got.organization_slug == "local"


def test_station_name_rules_on_create_and_rename(server: Server) -> None:
    a, b = server.station("Alpha"), server.station("Beta")
    assert server.admin.post("/api/v2/stations", json={"name": ""}).status_code == 422
    assert server.admin.post("/api/v2/stations", json={"name": "   "}).status_code == 422
    assert server.admin.post("/api/v2/stations", json={"name": "x" * 60}).status_code == 200
    assert server.admin.post("/api/v2/stations", json={"name": "x" * 61}).status_code == 422
    clash = server.admin.patch(f"/api/v2/stations/{b}", json={"name": "alpha"})
    assert clash.status_code == 409 and clash.json()["code"] and "already exists" in clash.json()["message"]
    assert server.admin.patch(f"/api/v2/stations/{b}", json={"name": "x" * 61}).status_code == 422
    assert server.admin.patch(f"/api/v2/stations/{a}", json={"name": "Alpha"}).status_code == 200  # its own name
    renamed = server.admin.patch(f"/api/v2/stations/{b}", json={"name": "Gamma"})
    assert renamed.status_code == 200 and server.admin.get(f"/api/v2/stations/{b}").json()["name"] == "Gamma"
    assert server.admin.patch("/api/v2/stations/nope", json={"name": "x"}).status_code == 404
    assert server.admin.delete("/api/v2/stations/nope").status_code == 404


def test_link_and_unlink_tell_the_station_to_pull(server: Server) -> None:
    station_id = server.station()
    procedure_id = server.procedure()
    key = server.enroll(station_id)["api_key"]
    station = server.client(key)
    station.post("/api/cli/heartbeat", json={})
    server.link(station_id, procedure_id)
    assert [c["name"] for c in station.post("/api/cli/heartbeat", json={}).json()["commands"]] == ["Pull"]
    # Linking again changes nothing and sends nothing.
    server.link(station_id, procedure_id)
    assert station.post("/api/cli/heartbeat", json={}).json()["commands"] == []
    unlinked = server.admin.delete(f"/api/v2/stations/{station_id}/procedures/{procedure_id}")
    assert unlinked.status_code == 200
    assert [c["name"] for c in station.post("/api/cli/heartbeat", json={}).json()["commands"]] == ["Pull"]
    assert server.admin.delete(f"/api/v2/stations/{station_id}/procedures/{procedure_id}").status_code == 404
    missing = server.admin.post(f"/api/v2/stations/{station_id}/procedures", json={"procedure_id": "nope"})
    assert missing.status_code == 404


def test_run_command_carries_the_unit_and_ui_values_to_the_station(server: Server) -> None:
    station_id = server.station()
    procedure_id = server.procedure()
    server.link(station_id, procedure_id)
    station = server.client(server.enroll(station_id)["api_key"])
    station.post("/api/cli/heartbeat", json={})  # the link's Pull
    command = {
        "name": "Run", "procedure_id": procedure_id, "serial_number": "SN-1", "part_number": "PCB-A",
        "revision_number": "B", "batch_number": "LOT-7", "ui_values": {"identify": {"serial_number": "SN-1"}, "check": {"ok": True}},
    }
    sent = server.admin.post(f"/api/v2/stations/{station_id}/commands", json=command)
    assert sent.status_code == 202 and isinstance(sent.json()["id"], str)
    for name in ("Stop", "Kill", "Pull", "Exit"):
        assert server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": name}).status_code == 202
    delivered = station.post(
        "/api/cli/heartbeat",
        json={"status": "idle", "cli_version": "0.1.0", "active_deployments": [], "queue": {"pending": 0, "parked": 0}},
    )
    assert delivered.status_code == 200 and set(delivered.json()) == {"server_time", "commands"}
    commands = delivered.json()["commands"]
    assert commands[0] == {**command, "id": sent.json()["id"]}
    assert [c["name"] for c in commands] == ["Run", "Stop", "Kill", "Pull", "Exit"]
    assert server.admin.post("/api/v2/stations/nope/commands", json={"name": "Pull"}).status_code == 404
    assert server.admin.post(f"/api/v2/stations/{station_id}/commands", json={"name": "Run"}).status_code == 422
