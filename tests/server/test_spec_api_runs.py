"""api.md, Runs: required fields, idempotency on client_run_ref, slots, metadata limits,
filters through the official client, and what a run reads back as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tofupilot.v2 import TofuPilot

from tests.server.conftest import Server, run_body


def test_each_required_field_is_required(server: Server) -> None:
    procedure = server.procedure()
    for field in ("outcome", "procedure_id", "started_at", "ended_at", "serial_number"):
        body = run_body(procedure)
        del body[field]
        response = server.admin.post("/api/v2/runs", json=body)
        assert response.status_code == 422, (field, response.text)
        error = response.json()
        assert error["code"] == "validation_error" and field in error["message"]
        assert any(field in issue["message"] for issue in error["issues"])
    assert server.admin.get("/api/v2/runs").json()["data"] == []


def test_metadata_and_unit_metadata_take_at_most_50_keys(server: Server) -> None:
    procedure = server.procedure()
    fifty = {f"k{i}": i for i in range(50)}
    ok = server.admin.post("/api/v2/runs", json=run_body(procedure, metadata=fifty, unit_metadata=fifty))
    assert ok.status_code == 200, ok.text
    got = server.admin.get(f"/api/v2/runs/{ok.json()['id']}").json()
    assert got["metadata"] == fifty and got["unit_metadata"] == fifty
    for field in ("metadata", "unit_metadata"):
        refused = server.admin.post("/api/v2/runs", json=run_body(procedure, **{field: {**fifty, "one_more": 1}}))
        assert refused.status_code == 422 and field in refused.json()["message"]
    assert len(server.admin.get("/api/v2/runs").json()["data"]) == 1


def test_a_seen_client_run_ref_returns_the_first_run_whatever_the_body(server: Server) -> None:
    procedure = server.procedure()
    station_id = server.station()
    server.link(station_id, procedure)
    station = server.client(server.enroll(station_id)["api_key"])
    first = station.post("/api/v2/runs", json=run_body(procedure, serial="SN-1", client_run_ref="inst_1"))
    retry = station.post("/api/v2/runs", json=run_body(procedure, serial="SN-1", outcome="FAIL", client_run_ref="inst_1"))
    other = station.post("/api/v2/runs", json=run_body(procedure, serial="SN-1", client_run_ref="inst_2"))
    no_ref = [station.post("/api/v2/runs", json=run_body(procedure, serial="SN-1")).json()["id"] for _ in range(2)]
    assert first.status_code == retry.status_code == other.status_code == 200
    assert retry.json() == first.json() and other.json()["id"] != first.json()["id"]
    assert no_ref[0] != no_ref[1]  # without a reference every request is a new run
    runs = server.admin.get("/api/v2/runs", params={"serial_numbers": ["SN-1"]}).json()["data"]
    assert len(runs) == 4
    assert server.admin.get(f"/api/v2/runs/{first.json()['id']}").json()["outcome"] == "PASS"


def test_slots_deployment_and_station_filters_through_the_official_client(server: Server) -> None:
    procedure = server.procedure()
    station_id = server.station("Bench A")
    server.link(station_id, procedure)
    station = TofuPilot(api_key=server.enroll(station_id)["api_key"], server_url=server.url + "/api")
    admin = TofuPilot(api_key=server.key, server_url=server.url + "/api")
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    ids = {}
    for slot, name in (("left", "Left"), ("right", "Right")):
        ids[slot] = station.runs.create(
            outcome="PASS", procedure_id=procedure, started_at=t0, ended_at=t0 + timedelta(seconds=2),
            serial_number=f"SN-{slot}", execution_id="exec-1", slot_key=slot, slot_name=name,
            deployment_id="dep-1", client_run_ref=f"inst_{slot}",
        ).id
    lone = admin.runs.create(outcome="FAIL", procedure_id=procedure, started_at=t0 - timedelta(hours=1),
                             ended_at=t0, serial_number="SN-lone").id
    got = admin.runs.get(id=ids["left"])
    assert (got.execution_id, got.slot_key, got.slot_name) == ("exec-1", "left", "Left")
    assert got.created_by_station is not None and got.created_by_station.id == station_id
    assert got.started_at.tzinfo is not None
    by_station = admin.runs.list(created_by_station_ids=[station_id])
    assert {r.id for r in by_station.data} == set(ids.values())
    assert {r.slot_key for r in by_station.data} == {"left", "right"}
    assert [r.id for r in admin.runs.list(outcomes=["FAIL"]).data] == [lone]
    assert [r.id for r in admin.runs.list(serial_numbers=["SN-right", "SN-lone"], sort_order="asc").data] == [lone, ids["right"]]
    assert [r.id for r in admin.runs.list(started_before=t0 - timedelta(minutes=1)).data] == [lone]
    assert {r.id for r in admin.runs.list(started_after=t0).data} == set(ids.values())
    raw = server.admin.get("/api/v2/runs", params={"execution_ids": ["exec-1"]}).json()["data"]
    assert {r["id"] for r in raw} == set(ids.values())
    # A station's own list holds only its runs.
    assert {r.id for r in station.runs.list().data} == set(ids.values())


def test_delete_runs_takes_repeated_ids_and_needs_one(server: Server) -> None:
    procedure = server.procedure()
    a, b, c = (server.admin.post("/api/v2/runs", json=run_body(procedure, serial=s)).json()["id"] for s in "abc")
    deleted = server.admin.delete(f"/api/v2/runs?ids={a}&ids={b}")
    assert deleted.status_code == 200 and sorted(deleted.json()["id"]) == sorted([a, b])
    assert [r["id"] for r in server.admin.get("/api/v2/runs").json()["data"]] == [c]
    assert server.admin.delete("/api/v2/runs").status_code == 422


def _naive_datetimes(value: object, path: str = "") -> list[str]:
    """Every datetime string in a JSON value that carries no timezone."""
    import re

    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _naive_datetimes(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _naive_datetimes(v, f"{path}[{i}]")]
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", value):
        return [] if re.search(r"(Z|[+-]\d{2}:\d{2})$", value) else [f"{path}={value}"]
    return []


def test_every_datetime_read_back_has_a_timezone_even_when_sent_without(server: Server) -> None:
    """api.md: datetimes are ISO-8601 with timezone. A body sent without zones (the
    official client passes a naive datetime through) is read as UTC, never a 500."""
    procedure = server.procedure()
    station_id = server.station()
    server.link(station_id, procedure)
    key = server.enroll(station_id)["api_key"]
    server.client(key).post("/api/cli/heartbeat", json={})
    body = run_body(procedure, sequences=[{"path": "cal", "name": "Cal", "outcome": "PASS",
                                           "started_at": "2026-03-10T11:00:00", "ended_at": "2026-03-10T11:00:01"}])
    body["started_at"], body["ended_at"] = "2026-03-10T11:00:00", "2026-03-10T11:00:05"
    body["phases"][0]["started_at"], body["phases"][0]["sequence_path"] = "2026-03-10T11:00:00", "cal"
    body["logs"][0]["timestamp"] = "2026-03-10T11:00:00.5"
    run_id = server.admin.post("/api/v2/runs", json=body).json()["id"]
    got = server.admin.get(f"/api/v2/runs/{run_id}")
    assert got.status_code == 200, got.text
    assert got.json()["started_at"] == "2026-03-10T11:00:00Z" and got.json()["phases"][0]["duration"] == "PT1S"
    token = server.admin.post(f"/api/v2/stations/{station_id}/setup-token").json()
    answers = [got.json(), token, server.client(key).post("/api/cli/heartbeat", json={}).json()]
    for path in ("/api/v2/runs", "/api/v2/stations", f"/api/v2/stations/{station_id}", "/api/v2/procedures",
                 f"/api/v2/procedures/{procedure}", f"/api/v2/stations/{station_id}/uptime?days=2"):
        response = server.admin.get(path)
        assert response.status_code == 200, (path, response.text)
        answers.append(response.json())
    assert [p for a in answers for p in _naive_datetimes(a)] == []
    client = TofuPilot(api_key=server.key, server_url=server.url + "/api")
    assert client.runs.get(id=run_id).phases[0].started_at.tzinfo is not None
