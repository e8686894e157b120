"""api.md, Procedures and deployments: procedure CRUD through the official client, the
deployment shapes (list and get), deploying by ref or sha, and rollback."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from tofupilot.v2 import TofuPilot, errors

from tests.server.conftest import Server, commit, make_repo


def test_procedure_crud_through_the_official_client(server: Server) -> None:
    client = TofuPilot(api_key=server.key, server_url=server.url + "/api")
    created = client.procedures.create(name="Final test")
    assert isinstance(created.id, str)
    listed = client.procedures.list()
    assert [p.id for p in listed.data] == [created.id] and listed.meta.has_more is False
    client.procedures.update(id=created.id, name="FFT")
    assert client.procedures.get(id=created.id).name == "FFT"
    deleted = client.procedures.delete(id=created.id)
    assert deleted.id == created.id
    assert client.procedures.list().data == []
    with pytest.raises(errors.ErrorNOTFOUND):
        client.procedures.get(id=created.id)
    assert server.admin.delete(f"/api/v2/procedures/{created.id}").status_code == 404
    assert server.admin.patch(f"/api/v2/procedures/{created.id}", json={"name": "x"}).status_code == 404


def test_deleting_a_linked_procedure_tells_its_stations(server: Server) -> None:
    station_id = server.station()
    procedure_id = server.procedure()
    server.link(station_id, procedure_id)
    station = server.client(server.enroll(station_id)["api_key"])
    station.post("/api/cli/heartbeat", json={})
    assert server.admin.delete(f"/api/v2/procedures/{procedure_id}").status_code == 200
    assert [c["name"] for c in station.post("/api/cli/heartbeat", json={}).json()["commands"]] == ["Pull"]
    assert station.get("/api/v2/stations/current").json()["procedures"] == []


def _check_deployment(body: dict[str, object], *, procedure_id: str, sha: str) -> None:
    assert {"id", "procedure", "status", "environment", "trigger", "deployed_at", "commit", "stations"} <= set(body)
    assert body["procedure"] == {"id": procedure_id, "name": "FVT"}
    assert body["status"] in ("pending", "building", "ready", "failed")
    deployed_at = datetime.fromisoformat(str(body["deployed_at"]).replace("Z", "+00:00"))
    assert deployed_at.tzinfo is not None
    commit_ = body["commit"]
    assert isinstance(commit_, dict) and {"sha", "message", "branch"} <= set(commit_) and commit_["sha"] == sha
    assert isinstance(body["stations"], list)


def test_deployment_shapes_in_list_and_get(server: Server, tmp_path: Path) -> None:
    _repo, sha = make_repo(tmp_path / "repo", message="release 1")
    station_id = server.station("Bench A")
    procedure_id = server.procedure("FVT", {"url": str(tmp_path / "repo"), "branch": "main"})
    server.link(station_id, procedure_id)
    created = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id})
    assert created.status_code == 200, created.text
    _check_deployment(created.json(), procedure_id=procedure_id, sha=sha)
    got = server.admin.get(f"/api/v2/deployments/{created.json()['id']}").json()
    _check_deployment(got, procedure_id=procedure_id, sha=sha)
    assert got["status"] == "ready" and [s["id"] for s in got["stations"]] == [station_id]
    listed = server.admin.get("/api/v2/deployments", params={"procedure_ids": [procedure_id]}).json()["data"]
    assert [d["id"] for d in listed] == [got["id"]]
    _check_deployment(listed[0], procedure_id=procedure_id, sha=sha)
    assert listed[0]["commit"]["message"] == "release 1"
    assert server.admin.post("/api/v2/deployments", json={"procedure_id": "nope"}).status_code == 404


def test_deploy_by_ref_or_sha_pulls_only_linked_stations_and_rollback_needs_no_rebuild(server: Server, tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "repo", message="one")
    repo.branches.local.create("release", repo.get(first))  # type: ignore[arg-type]
    second = commit(repo, {"procedure.yaml": "name: FVT\nversion: 2\n"}, "two")
    linked, other = server.station("linked"), server.station("other")
    procedure_id = server.procedure("FVT", {"url": str(tmp_path / "repo"), "branch": "main"})
    server.link(linked, procedure_id)
    stations = {s: server.client(server.enroll(s)["api_key"]) for s in (linked, other)}
    for client in stations.values():
        client.post("/api/cli/heartbeat", json={})

    by_branch = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id, "ref": "release"}).json()
    assert by_branch["sha"] == first and by_branch["commit"]["sha"] == first
    by_sha = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id, "sha": second}).json()
    assert by_sha["sha"] == second
    assert [c["name"] for c in stations[linked].post("/api/cli/heartbeat", json={}).json()["commands"]] == ["Pull", "Pull"]
    assert stations[other].post("/api/cli/heartbeat", json={}).json()["commands"] == []

    # Rollback makes the earlier one active again, with the same id and commit: no new deployment.
    commit(repo, {"procedure.yaml": "name: FVT\nversion: 3\n"}, "three")
    back = server.admin.post(f"/api/v2/procedures/{procedure_id}/rollback", json={"deployment_id": by_branch["id"]})
    assert back.status_code == 200 and (back.json()["id"], back.json()["sha"]) == (by_branch["id"], first)
    assert len(server.admin.get("/api/v2/deployments", params={"procedure_ids": [procedure_id]}).json()["data"]) == 2
    current = stations[linked].get("/api/v2/stations/current").json()
    assert current["procedures"][0]["deployment"]["id"] == by_branch["id"]
    assert [c["name"] for c in stations[linked].post("/api/cli/heartbeat", json={}).json()["commands"]] == ["Pull"]
    assert server.admin.post(f"/api/v2/procedures/{procedure_id}/rollback", json={"deployment_id": "nope"}).status_code == 404


def test_deleting_a_procedure_deletes_its_runs_as_tofupilot_does(server: Server, tmp_path: Path) -> None:
    """The official client documents `procedures.delete` as removing the procedure's
    runs and attachments too; runs of other procedures stay."""
    from tests.server.conftest import run_body

    client = TofuPilot(api_key=server.key, server_url=server.url + "/api")
    doomed, kept = server.procedure("doomed"), server.procedure("kept")
    run = server.admin.post("/api/v2/runs", json=run_body(doomed)).json()["id"]
    other = server.admin.post("/api/v2/runs", json=run_body(kept)).json()["id"]
    report = tmp_path / "report.txt"
    report.write_text("bytes")
    attachment = client.runs.attachments.upload(id=run, file=report)
    assert (server.data_dir / "attachments" / attachment).exists()
    assert client.procedures.delete(id=doomed).id == doomed
    assert server.admin.get(f"/api/v2/runs/{run}").status_code == 404
    assert not (server.data_dir / "attachments" / attachment).exists()
    assert [r["id"] for r in server.admin.get("/api/v2/runs").json()["data"]] == [other]
    assert client.procedures.get(id=kept).runs_count == 1
