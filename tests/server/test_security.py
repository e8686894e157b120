"""Bad input and bad keys: each gets a clear 4xx with the error shape, never a 500."""

from __future__ import annotations

import httpx

from tests.server.conftest import FakeClock, Server, run_body


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["code"], str)
    if code is not None:
        assert body["code"] == code
    return body  # type: ignore[no-any-return]


def token_for(server: Server, station_id: str) -> str:
    return str(server.admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"])


def redeem(server: Server, token: str) -> httpx.Response:
    return httpx.post(server.url + "/api/cli/login/redeem", json={"token": token, "hostname": "h"})


def test_setup_token_is_64_chars_single_use_and_hashed_at_rest(server: Server) -> None:
    station_id = server.station()
    token = token_for(server, station_id)
    assert len(token) == 64
    first = redeem(server, token)
    assert first.status_code == 200
    assert first.json()["station_id"] == station_id and first.json()["installation_id"]
    assert_error(redeem(server, token), 409, "token_used")
    assert token.encode() not in (server.data_dir / "server.db").read_bytes()


def test_unknown_token_is_401(server: Server) -> None:
    assert_error(redeem(server, "f" * 64), 401, "token_invalid")


def test_expired_token_is_410(server: Server, clock: FakeClock) -> None:
    token = token_for(server, server.station())
    clock.advance(minutes=59)
    still_valid = token_for(server, server.station("bench-2"))
    clock.advance(minutes=1, seconds=1)
    assert_error(redeem(server, token), 410, "token_expired")
    assert redeem(server, still_valid).status_code == 200


def test_a_new_token_replaces_the_previous_station_key(server: Server) -> None:
    station_id = server.station()
    old_key = server.enroll(station_id)["api_key"]
    new_key = server.enroll(station_id)["api_key"]
    assert old_key != new_key
    assert_error(server.client(old_key).get("/api/cli/whoami"), 401, "key_revoked")
    me = server.client(new_key).get("/api/cli/whoami").json()
    assert me == {"auth_type": "station", "station_id": station_id, "station_name": "bench-1", "organization_slug": "local"}


def test_removed_station_key_is_revoked(server: Server) -> None:
    station_id = server.station()
    key = server.enroll(station_id)["api_key"]
    assert server.admin.delete(f"/api/v2/stations/{station_id}").status_code == 200
    assert_error(server.client(key).get("/api/v2/stations/current"), 401, "key_revoked")


def test_revoked_user_key(server: Server) -> None:
    created = server.admin.post("/api/v2/keys", json={"name": "ci"}).json()
    other = server.client(created["api_key"])
    assert other.get("/api/v2/stations").status_code == 200
    assert server.admin.delete(f"/api/v2/keys/{created['id']}").status_code == 200
    assert_error(other.get("/api/v2/stations"), 401, "key_revoked")


def test_missing_and_unknown_keys_are_401(server: Server) -> None:
    assert_error(server.client().get("/api/v2/stations"), 401)
    assert_error(server.client("tofu_u_nope").get("/api/v2/stations"), 401)


def test_station_keys_reach_only_their_own_station(server: Server) -> None:
    a, b = server.station("a"), server.station("b")
    procedure = server.procedure()
    server.link(a, procedure)
    key_a = server.client(server.enroll(a)["api_key"])
    assert key_a.get(f"/api/v2/stations/{a}").status_code == 200
    assert_error(key_a.get(f"/api/v2/stations/{b}"), 403, "forbidden")
    assert_error(key_a.get(f"/api/v2/stations/{b}/uptime"), 403)
    assert_error(key_a.get(f"/api/v2/stations/{b}/events"), 403)
    # Admin work needs a user key.
    assert_error(key_a.get("/api/v2/stations"), 403)
    assert_error(key_a.post("/api/v2/stations", json={"name": "mine"}), 403)
    assert_error(key_a.post(f"/api/v2/stations/{b}/setup-token"), 403)


def test_station_key_writes_runs_only_for_linked_procedures(server: Server) -> None:
    a, b = server.station("a"), server.station("b")
    linked, other = server.procedure("linked"), server.procedure("other")
    server.link(a, linked)
    server.link(b, other)
    key_a = server.client(server.enroll(a)["api_key"])
    key_b = server.client(server.enroll(b)["api_key"])
    assert key_a.post("/api/v2/runs", json=run_body(linked)).status_code == 200
    assert_error(key_a.post("/api/v2/runs", json=run_body(other)), 403, "forbidden")
    run_b = key_b.post("/api/v2/runs", json=run_body(other)).json()["id"]
    assert_error(key_a.get(f"/api/v2/runs/{run_b}"), 403)
    assert [r["procedure"]["id"] for r in key_a.get("/api/v2/runs").json()["data"]] == [linked]
    assert_error(key_a.post(f"/api/v2/runs/{run_b}/attachments", json={"name": "x.txt"}), 403)


def test_oversized_bodies_are_413(tmp_path: object, server: Server) -> None:
    procedure = server.procedure()
    huge = run_body(procedure, docstring="x" * (9 * 1024 * 1024))
    assert_error(server.admin.post("/api/v2/runs", json=huge), 413, "payload_too_large")

    def chunks():  # no Content-Length: streamed
        for _ in range(10):
            yield b" " * (1024 * 1024)

    assert_error(server.admin.post("/api/v2/runs", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_oversized_attachment_is_413_and_leaves_no_file(tmp_path: object, clock: FakeClock) -> None:
    from pathlib import Path

    from tests.server.fixtures import start_server

    data = Path(str(tmp_path)) / "small"
    with start_server(data, clock=clock, max_attachment_bytes=1000) as (url, key, _d, _h):
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        procedure = admin.post("/api/v2/procedures", json={"name": "p"}).json()["id"]
        run = admin.post("/api/v2/runs", json=run_body(procedure)).json()["id"]
        upload = admin.post(f"/api/v2/runs/{run}/attachments", json={"name": "big.bin"}).json()
        assert_error(httpx.put(upload["upload_url"], content=b"x" * 1001), 413)

        def chunks():
            for _ in range(5):
                yield b"y" * 400

        assert_error(httpx.put(upload["upload_url"], content=chunks()), 413)
        assert [p.name for p in (data / "attachments").iterdir()] == []
        assert admin.get(f"/api/v2/runs/{run}").json()["attachments"] == []


def test_path_traversal_in_attachment_names_is_refused(server: Server) -> None:
    procedure = server.procedure()
    run = server.admin.post("/api/v2/runs", json=run_body(procedure)).json()["id"]
    for name in ["../../etc/passwd", "..", "a/b.txt", "..\\win.ini", "/abs.txt", "nul\x00.txt", "tab\t.txt"]:
        assert_error(server.admin.post(f"/api/v2/runs/{run}/attachments", json={"name": name}), 422, "invalid_name")
    ok = server.admin.post(f"/api/v2/runs/{run}/attachments", json={"name": "..hidden but fine.txt"})
    assert ok.status_code == 200


def test_upload_url_needs_its_signature(server: Server) -> None:
    procedure = server.procedure()
    run = server.admin.post("/api/v2/runs", json=run_body(procedure)).json()["id"]
    upload = server.admin.post(f"/api/v2/runs/{run}/attachments", json={"name": "a.txt"}).json()
    forged = upload["upload_url"].split("?")[0] + "?sig=" + "0" * 64
    assert_error(httpx.put(forged, content=b"x"), 403, "invalid_signature")


def test_malformed_json_is_400(server: Server) -> None:
    response = server.admin.post("/api/v2/runs", content=b'{"outcome": "PASS",', headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")
    assert_error(server.admin.post("/api/v2/stations", content=b"[1, 2", headers={"content-type": "application/json"}), 400)


def test_wrong_types_are_422_with_issues(server: Server) -> None:
    procedure = server.procedure()
    bad = run_body(procedure)
    bad["phases"][0]["outcome"] = "MAYBE"
    bad["serial_number"] = 12
    body = assert_error(server.admin.post("/api/v2/runs", json=bad), 422, "validation_error")
    issues = " ".join(i["message"] for i in body["issues"])  # type: ignore[attr-defined]
    assert "phases.0.outcome" in issues and "serial_number" in issues
    assert_error(server.admin.post("/api/v2/stations", json={"name": ["x"]}), 422)
    assert_error(server.admin.post("/api/v2/stations", json={"name": "x" * 61}), 422)
    assert_error(server.admin.get("/api/v2/runs", params={"limit": "many"}), 422)
    assert_error(server.admin.post("/api/v2/runs", json=[1, 2]), 422)


def test_run_semantics_are_validated(server: Server) -> None:
    procedure = server.procedure()
    assert_error(server.admin.post("/api/v2/runs", json=run_body(procedure, serial="  ")), 422)
    backwards = run_body(procedure)
    backwards["ended_at"] = "2020-01-01T00:00:00+00:00"
    assert_error(server.admin.post("/api/v2/runs", json=backwards), 422)
    assert_error(server.admin.post("/api/v2/runs", json=run_body(procedure, metadata={f"k{i}": i for i in range(51)})), 422)
    no_procedure = run_body(procedure)
    del no_procedure["procedure_id"]
    assert_error(server.admin.post("/api/v2/runs", json=no_procedure), 422)
    assert_error(server.admin.post("/api/v2/runs", json=run_body("missing")), 404)
    assert_error(server.admin.post("/api/v2/runs", json=run_body(procedure, surprise=1)), 422)
