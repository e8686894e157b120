"""Runs over plain HTTP: idempotency, filters, pagination, sorting, delete, attachments."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from tests.server.conftest import Server, run_body


def test_client_run_ref_is_idempotent_even_under_concurrent_retries(server: Server) -> None:
    procedure = server.procedure()
    body = run_body(procedure, client_run_ref="inst-1_7")

    def post(_: int) -> str:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}) as c:
            response = c.post("/api/v2/runs", json=body)
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(post, range(12)))
    assert len(ids) == 1
    assert server.admin.get("/api/v2/runs").json()["data"][0]["client_run_ref"] == "inst-1_7"
    assert len(server.admin.get("/api/v2/runs").json()["data"]) == 1


def test_filters_sorting_and_cursor_pagination(server: Server) -> None:
    a, b = server.procedure("A"), server.procedure("B")
    station_id = server.station()
    server.link(station_id, b)
    station = server.client(server.enroll(station_id)["api_key"])
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    ids = []
    for i in range(7):
        owner = station if i % 2 else server.admin
        body = run_body(b if i % 2 else a, serial=f"SN-{i}", outcome="FAIL" if i % 3 == 0 else "PASS", start=t0 + timedelta(hours=i))
        ids.append(owner.post("/api/v2/runs", json=body).json()["id"])

    def listing(**params: object) -> list[str]:
        response = server.admin.get("/api/v2/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["unit"]["serial_number"] for r in response.json()["data"]]

    assert listing() == [f"SN-{i}" for i in reversed(range(7))]
    assert listing(sort_order="asc") == [f"SN-{i}" for i in range(7)]
    assert listing(outcomes=["FAIL"]) == ["SN-6", "SN-3", "SN-0"]
    assert listing(outcomes=["FAIL", "PASS"], procedure_ids=[b]) == ["SN-5", "SN-3", "SN-1"]
    assert listing(serial_numbers=["SN-2", "SN-4"]) == ["SN-4", "SN-2"]
    assert listing(created_by_station_ids=[station_id]) == ["SN-5", "SN-3", "SN-1"]
    assert listing(started_after=(t0 + timedelta(hours=5)).isoformat()) == ["SN-6", "SN-5"]
    assert listing(started_before=(t0 + timedelta(hours=1)).isoformat()) == ["SN-1", "SN-0"]
    assert listing(sort_by="serial_number", sort_order="asc", limit=3) == ["SN-0", "SN-1", "SN-2"]
    long_run = run_body(a, serial="SN-long", start=t0 - timedelta(days=1))
    long_run["ended_at"] = t0.isoformat()
    server.admin.post("/api/v2/runs", json=long_run)
    assert listing(sort_by="duration", limit=1) == ["SN-long"]
    assert listing(sort_by="duration", sort_order="asc", limit=1) != ["SN-long"]

    seen, cursor = [], 0
    while cursor is not None:
        page = server.admin.get("/api/v2/runs", params={"limit": 3, "cursor": cursor}).json()
        seen += [r["id"] for r in page["data"]]
        assert page["meta"]["has_more"] == (page["meta"]["next_cursor"] is not None)
        cursor = page["meta"]["next_cursor"]
    assert set(ids) <= set(seen) and len(seen) == 8

    summary = server.admin.get("/api/v2/runs", params={"created_by_station_ids": [station_id], "limit": 1}).json()["data"][0]
    assert summary["created_by_station"] == {"id": station_id, "name": "bench-1"}
    assert summary["procedure"]["name"] == "B" and summary["duration"] == "PT3S"


def test_run_detail_keeps_everything_the_station_sent(server: Server) -> None:
    procedure = server.procedure()
    body = run_body(
        procedure,
        execution_id="exec-1", slot_key="s1", slot_name="Left", procedure_version="1.2.0",
        deployment_id="dep-1", sub_units=["SUB-1"], unit_metadata={"lot": 4}, docstring="doc",
        operated_by="alice", batch_number="B7",
        sequences=[{"path": "cal", "name": "Calibration", "outcome": "PASS"}],
        config=[{"key": "rate", "value": 9600, "source": "default"}],
        secrets=[{"key": "token", "source": "station"}],
    )
    body["phases"][0]["sequence_path"] = "cal"
    body["phases"][1]["measurements"][0].update(
        {"x_axis": {"data": [0, 1, 2], "units": "s"}, "y_axis": [{"data": [1.0, 1.1, 1.2], "units": "V", "aggregations": [{"type": "max", "value": 1.2}]}]}
    )
    run_id = server.admin.post("/api/v2/runs", json=body).json()["id"]
    got = server.admin.get(f"/api/v2/runs/{run_id}").json()
    assert (got["execution_id"], got["slot_key"], got["slot_name"]) == ("exec-1", "s1", "Left")
    assert got["procedure"]["version"]["tag"] == "1.2.0" and got["deployment_id"] == "dep-1"
    assert got["unit"]["batch"]["number"] == "B7" and got["unit"]["part"]["revision"]["number"] == "B"
    assert [s["serial_number"] for s in got["sub_units"]] == ["SUB-1"]
    assert got["unit_metadata"] == {"lot": 4} and got["operated_by"]["name"] == "alice"
    assert json.dumps(got["unit_metadata"]) == '{"lot": 4}'
    assert got["sequences"][0]["path"] == "cal" and got["phases"][0]["sequence_path"] == "cal"
    assert got["config"][0]["value"] == 9600 and got["secrets"][0]["key"] == "token"
    series = got["phases"][1]["measurements"][0]["data_series"]
    assert [s["units"] for s in series] == ["s", "V"] and series[1]["aggregations"][0]["value"] == 1.2
    assert [(p["name"], p["duration"]) for p in got["phases"]] == [("phase_0", "PT1S"), ("phase_1", "PT1S")]
    assert got["logs"][0]["message"] == "hello"
    # Ids minted at creation are stable across reads.
    assert server.admin.get(f"/api/v2/runs/{run_id}").json()["phases"] == got["phases"]


def test_sequence_path_must_name_a_sequence(server: Server) -> None:
    procedure = server.procedure()
    body = run_body(procedure, sequences=[{"path": "cal", "name": "Calibration", "outcome": "PASS"}])
    body["phases"][0]["sequence_path"] = "nope"
    assert server.admin.post("/api/v2/runs", json=body).status_code == 422


def test_delete_runs_removes_their_attachments(server: Server) -> None:
    procedure = server.procedure()
    keep = server.admin.post("/api/v2/runs", json=run_body(procedure, serial="keep")).json()["id"]
    drop = server.admin.post("/api/v2/runs", json=run_body(procedure, serial="drop")).json()["id"]
    upload = server.admin.post(f"/api/v2/runs/{drop}/attachments", json={"name": "log.txt"}).json()
    assert httpx.put(upload["upload_url"], content=b"hello").status_code == 200
    assert (server.data_dir / "attachments" / upload["id"]).read_bytes() == b"hello"
    deleted = server.admin.delete("/api/v2/runs", params={"ids": [drop, "unknown"]})
    assert deleted.status_code == 200 and deleted.json() == {"id": [drop]}
    assert not (server.data_dir / "attachments" / upload["id"]).exists()
    assert server.admin.get(f"/api/v2/runs/{drop}").status_code == 404
    assert [r["id"] for r in server.admin.get("/api/v2/runs").json()["data"]] == [keep]
    assert server.admin.delete("/api/v2/runs", params={"ids": ["unknown"]}).status_code == 404


def test_attachment_must_be_uploaded_before_finalize_or_link(server: Server) -> None:
    procedure = server.procedure()
    run = server.admin.post("/api/v2/runs", json=run_body(procedure)).json()["id"]
    pending = server.admin.post("/api/v2/attachments", json={"name": "a.txt"}).json()
    assert server.admin.post(f"/api/v2/attachments/{pending['id']}/finalize").status_code == 409
    assert server.admin.patch(f"/api/v2/runs/{run}", json={"attachments": [pending["id"]]}).status_code == 409
    assert httpx.put(pending["upload_url"], content=b"abc").status_code == 200
    url = server.admin.post(f"/api/v2/attachments/{pending['id']}/finalize").json()["url"]
    assert httpx.put(pending["upload_url"], content=b"changed").status_code == 409
    assert httpx.get(url).content == b"abc"
    assert httpx.get(url.split("?")[0] + "?sig=bad").status_code == 403
