"""api.md, Conventions and Enrollment: the two kinds of key, setup tokens, redeem and
whoami, each rule checked against the real server."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from tests.server.conftest import FakeClock, Server, run_body


def _error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    body = response.json()
    assert set(body) <= {"message", "code", "issues"} and isinstance(body["message"], str) and body["message"]
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code


def test_a_station_key_may_do_none_of_the_admin_work(server: Server, tmp_path: object) -> None:
    """Station keys: read own configuration, report presence, write runs; nothing else."""
    own, other = server.station("own"), server.station("other")
    procedure = server.procedure("FVT")
    server.link(own, procedure)
    station = server.client(server.enroll(own)["api_key"])
    run = server.admin.post("/api/v2/runs", json=run_body(procedure)).json()["id"]
    forbidden = [
        ("GET", "/api/v2/stations", None),
        ("POST", "/api/v2/stations", {"name": "mine"}),
        ("PATCH", f"/api/v2/stations/{own}", {"name": "renamed"}),
        ("DELETE", f"/api/v2/stations/{own}", None),
        ("DELETE", f"/api/v2/stations/{other}", None),
        ("POST", f"/api/v2/stations/{own}/setup-token", None),
        ("POST", f"/api/v2/stations/{own}/procedures", {"procedure_id": procedure}),
        ("DELETE", f"/api/v2/stations/{own}/procedures/{procedure}", None),
        ("POST", f"/api/v2/stations/{own}/commands", {"name": "Pull"}),
        ("GET", "/api/v2/procedures", None),
        ("POST", "/api/v2/procedures", {"name": "new"}),
        ("PATCH", f"/api/v2/procedures/{procedure}", {"name": "renamed"}),
        ("DELETE", f"/api/v2/procedures/{procedure}", None),
        ("POST", "/api/v2/deployments", {"procedure_id": procedure}),
        ("POST", f"/api/v2/procedures/{procedure}/rollback", {"deployment_id": "x"}),
        ("DELETE", f"/api/v2/runs?ids={run}", None),
        ("POST", "/api/v2/keys", {"name": "x"}),
        ("GET", f"/api/v2/stations/{other}", None),
        ("GET", f"/api/v2/stations/{other}/uptime", None),
    ]
    for method, path, body in forbidden:
        _error(station.request(method, path, json=body), 403)
    # Nothing above took effect.
    assert server.admin.get(f"/api/v2/runs/{run}").status_code == 200
    assert [p["id"] for p in station.get("/api/v2/stations/current").json()["procedures"]] == [procedure]
    assert server.admin.get(f"/api/v2/stations/{own}").json()["name"] == "own"
    assert station.get("/api/cli/whoami").status_code == 200
    # What a station may do: its own configuration, presence, runs of its linked procedure.
    assert station.get(f"/api/v2/stations/{own}").status_code == 200
    assert station.get(f"/api/v2/stations/{own}/uptime").status_code == 200
    assert station.post("/api/cli/heartbeat", json={"status": "idle"}).status_code == 200
    assert station.post("/api/v2/runs", json=run_body(procedure, serial="SN-station")).status_code == 200


def test_a_station_key_sees_no_other_station_s_runs_or_deployments(server: Server, tmp_path: object) -> None:
    from pathlib import Path

    from tests.server.conftest import make_repo

    make_repo(Path(str(tmp_path)) / "repo")
    a, b = server.station("a"), server.station("b")
    pa = server.procedure("A", {"url": str(Path(str(tmp_path)) / "repo")})
    pb = server.procedure("B", {"url": str(Path(str(tmp_path)) / "repo")})
    server.link(a, pa)
    server.link(b, pb)
    dep_a = server.admin.post("/api/v2/deployments", json={"procedure_id": pa}).json()["id"]
    dep_b = server.admin.post("/api/v2/deployments", json={"procedure_id": pb}).json()["id"]
    key_a = server.client(server.enroll(a)["api_key"])
    key_b = server.client(server.enroll(b)["api_key"])
    run_b = key_b.post("/api/v2/runs", json=run_body(pb)).json()["id"]
    key_a.post("/api/v2/runs", json=run_body(pa))

    assert [d["id"] for d in key_a.get("/api/v2/deployments").json()["data"]] == [dep_a]
    assert key_a.get("/api/v2/deployments", params={"procedure_ids": [pb]}).json()["data"] == []
    _error(key_a.get(f"/api/v2/deployments/{dep_b}"), 403)
    _error(key_a.get(f"/api/v2/procedures/{pb}"), 403)
    _error(key_a.get(f"/api/v2/runs/{run_b}"), 403)
    _error(key_a.patch(f"/api/v2/runs/{run_b}", json={"attachments": []}), 403)
    listed = key_a.get("/api/v2/runs", params={"created_by_station_ids": [b]}).json()
    assert listed["data"] == [] and listed["meta"] == {"has_more": False, "next_cursor": None}
    # A station cannot write a run for a procedure linked only to another station.
    _error(key_a.post("/api/v2/runs", json=run_body(pb)), 403)
    # Nor reuse another station's client_run_ref to read its run.
    key_b.post("/api/v2/runs", json=run_body(pb, client_run_ref="inst-b_1"))
    _error(key_a.post("/api/v2/runs", json=run_body(pa, client_run_ref="inst-b_1")), 409)


def test_setup_token_answer_expiry_and_station_binding(server: Server, clock: FakeClock) -> None:
    a, b = server.station("a"), server.station("b")
    created = server.admin.post(f"/api/v2/stations/{a}/setup-token")
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"token", "expires_at", "install_command"}
    assert len(body["token"]) == 64
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None and expires - clock.now == timedelta(hours=1)
    assert body["token"] in body["install_command"] and server.url in body["install_command"]
    token_b = server.admin.post(f"/api/v2/stations/{b}/setup-token").json()["token"]
    # Each token is bound to its station.
    redeemed = httpx.post(server.url + "/api/cli/login/redeem", json={"token": token_b, "hostname": "h"}).json()
    assert (redeemed["station_id"], redeemed["station_name"]) == (b, "b")
    # Exactly at expiry the token is gone: 410.
    clock.advance(hours=1)
    _error(httpx.post(server.url + "/api/cli/login/redeem", json={"token": body["token"]}), 410, "token_expired")
    _error(server.admin.post("/api/v2/stations/nope/setup-token"), 404)


def test_redeem_answers_exactly_the_listed_fields(server: Server) -> None:
    station_id = server.station("Bench A")
    token = server.admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"]
    fingerprint = {"hostname": "bench-a", "os": "linux", "platform": "x86_64", "mac_address": "00:11:22:33:44:55", "cli_version": "0.1.0"}
    response = httpx.post(server.url + "/api/cli/login/redeem", json={"token": token, **fingerprint})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"api_key", "station_id", "station_name", "organization_slug", "installation_id"}
    assert (body["station_id"], body["station_name"], body["organization_slug"]) == (station_id, "Bench A", "local")
    assert body["api_key"] and body["installation_id"]
    # The key works, and only as a station key.
    station = server.client(body["api_key"])
    assert station.get("/api/v2/stations/current").json()["id"] == station_id
    # A used token is 409 even after it would have expired; an unknown one 401.
    _error(httpx.post(server.url + "/api/cli/login/redeem", json={"token": token}), 409, "token_used")
    _error(httpx.post(server.url + "/api/cli/login/redeem", json={"token": "0" * 64}), 401, "token_invalid")
    _error(httpx.post(server.url + "/api/cli/login/redeem", json={}), 422)


def test_whoami_for_both_kinds_of_key_and_401_once_revoked(server: Server) -> None:
    user = server.admin.get("/api/cli/whoami")
    assert user.status_code == 200
    assert user.json() == {"auth_type": "user", "station_id": None, "station_name": None, "organization_slug": "local"}
    station_id = server.station("Bench A")
    key = server.enroll(station_id)["api_key"]
    me = server.client(key).get("/api/cli/whoami").json()
    assert me == {"auth_type": "station", "station_id": station_id, "station_name": "Bench A", "organization_slug": "local"}
    server.enroll(station_id)  # a new token for the same station replaces the key
    _error(server.client(key).get("/api/cli/whoami"), 401, "key_revoked")
    _error(server.client().get("/api/cli/whoami"), 401)


def test_keys_are_stored_only_as_hashes(server: Server) -> None:
    station_id = server.station()
    token = server.admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"]
    key = httpx.post(server.url + "/api/cli/login/redeem", json={"token": token}).json()["api_key"]
    user_key = server.admin.post("/api/v2/keys", json={"name": "ci"}).json()["api_key"]
    stored = b"".join(p.read_bytes() for p in server.data_dir.glob("server.db*"))
    for secret in (token, key, user_key, server.key):
        assert secret.encode() not in stored


def test_a_shared_procedure_shows_a_station_none_of_the_other_station_s_data(server: Server, tmp_path: object) -> None:
    """Two stations on one procedure: what one reads of it (procedure, deployments) names
    neither the other station nor its runs; the admin sees both."""
    from pathlib import Path

    from tests.server.conftest import make_repo

    make_repo(Path(str(tmp_path)) / "repo")
    a, b = server.station("a"), server.station("b")
    procedure = server.procedure("shared", {"url": str(Path(str(tmp_path)) / "repo")})
    server.link(a, procedure)
    server.link(b, procedure)
    dep = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure}).json()["id"]
    key_a = server.client(server.enroll(a)["api_key"])
    key_b = server.client(server.enroll(b)["api_key"])
    run_a = key_a.post("/api/v2/runs", json=run_body(procedure, serial="SN-A")).json()["id"]
    run_b = key_b.post("/api/v2/runs", json=run_body(procedure, serial="SN-B")).json()["id"]

    seen = key_a.get(f"/api/v2/procedures/{procedure}").json()
    assert [r["id"] for r in seen["recent_runs"]] == [run_a]
    assert [s["id"] for s in seen["stations"]] == [a]
    assert [s["id"] for s in key_a.get(f"/api/v2/deployments/{dep}").json()["stations"]] == [a]
    assert [s["id"] for s in key_a.get("/api/v2/deployments").json()["data"][0]["stations"]] == [a]
    for answer in (key_a.get(f"/api/v2/procedures/{procedure}"), key_a.get(f"/api/v2/deployments/{dep}"),
                   key_a.get("/api/v2/deployments"), key_a.get("/api/v2/stations/current"), key_a.get("/api/v2/runs")):
        assert b not in answer.text and run_b not in answer.text and "SN-B" not in answer.text
    admin = server.admin.get(f"/api/v2/procedures/{procedure}").json()
    assert {r["id"] for r in admin["recent_runs"]} == {run_a, run_b} and {s["id"] for s in admin["stations"]} == {a, b}
    assert {s["id"] for s in server.admin.get(f"/api/v2/deployments/{dep}").json()["stations"]} == {a, b}
