"""Procedures linked to real Git repositories (pygit2), deployments, rollback, and what
a station sees in `stations/current`."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tests.server.conftest import FakeClock, Server, commit, make_repo


def test_deploy_branch_tag_and_sha_then_roll_back(server: Server, clock: FakeClock, tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "repo", {"fvt/procedure.yaml": "name: FVT\n"}, message="first version")
    repo.create_tag("v1", pygit2.Oid(hex=first), pygit2.enums.ObjectType.COMMIT, pygit2.Signature("T", "t@x"), "v1")
    second = commit(repo, {"fvt/procedure.yaml": "name: FVT\nversion: 2\n"}, "second version")

    station_id = server.station()
    procedure_id = server.procedure("FVT", {"url": str(tmp_path / "repo"), "branch": "main", "path": "fvt"})
    server.link(station_id, procedure_id)
    station = server.client(server.enroll(station_id)["api_key"])
    assert station.get("/api/v2/stations/current").json()["procedures"][0]["deployment"] is None

    head = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id})
    assert head.status_code == 200, head.text
    assert head.json()["sha"] == second and head.json()["commit"]["branch"]["name"] == "main"
    current = station.get("/api/v2/stations/current").json()
    deployment = current["procedures"][0]["deployment"]
    assert deployment["id"] == head.json()["id"]
    assert deployment["commit"] == {"sha": second, "message": "second version", "branch": "main"}
    assert deployment["repository"]["url"] == str(tmp_path / "repo")
    assert deployment["repository"]["name"] == "repo"
    assert deployment["path"] == "fvt"

    clock.advance(minutes=1)
    tagged = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id, "ref": "v1"}).json()
    assert tagged["sha"] == first and tagged["commit"]["branch"] is None
    clock.advance(minutes=1)
    by_sha = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id, "sha": second[:10]}).json()
    assert by_sha["sha"] == second
    assert station.get("/api/v2/stations/current").json()["procedures"][0]["deployment"]["id"] == by_sha["id"]

    listed = server.admin.get("/api/v2/deployments", params={"procedure_ids": procedure_id}).json()["data"]
    assert [d["id"] for d in listed] == [by_sha["id"], tagged["id"], head.json()["id"]]
    assert [d["active"] for d in listed].count(True) == 1

    back = server.admin.post(f"/api/v2/procedures/{procedure_id}/rollback", json={"deployment_id": tagged["id"]})
    assert back.status_code == 200 and back.json()["active"] is True
    assert station.get("/api/v2/stations/current").json()["procedures"][0]["deployment"]["commit"]["sha"] == first
    assert station.get(f"/api/v2/deployments/{tagged['id']}").json()["sha"] == first

    # Every deployment and rollback told the station to pull.
    commands = station.post("/api/cli/heartbeat", json={}).json()["commands"]
    assert [c["name"] for c in commands] == ["Pull"] * 5  # link + 3 deployments + rollback


def test_deploy_errors_are_clear(server: Server, tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    bare = server.procedure("no repo")
    refused = server.admin.post("/api/v2/deployments", json={"procedure_id": bare})
    assert refused.status_code == 409 and refused.json()["code"] == "no_repository"

    linked = server.procedure("FVT", {"url": str(tmp_path / "repo")})
    unknown = server.admin.post("/api/v2/deployments", json={"procedure_id": linked, "ref": "nope"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "ref_not_found"
    assert "nope" in unknown.json()["message"]
    bad_sha = server.admin.post("/api/v2/deployments", json={"procedure_id": linked, "sha": "deadbeef"})
    assert bad_sha.status_code == 422

    gone = server.procedure("gone", {"url": str(tmp_path / "missing")})
    unreachable = server.admin.post("/api/v2/deployments", json={"procedure_id": gone})
    assert unreachable.status_code == 422 and unreachable.json()["code"] == "repository_unreachable"

    other = server.procedure("other", {"url": str(tmp_path / "repo")})
    dep = server.admin.post("/api/v2/deployments", json={"procedure_id": other}).json()
    wrong = server.admin.post(f"/api/v2/procedures/{linked}/rollback", json={"deployment_id": dep["id"]})
    assert wrong.status_code == 404


def test_linking_a_repository_later_and_path_safety(server: Server, tmp_path: Path) -> None:
    _repo, sha = make_repo(tmp_path / "repo")
    procedure_id = server.procedure("FVT")
    patched = server.admin.patch(f"/api/v2/procedures/{procedure_id}", json={"repository": {"url": str(tmp_path / "repo"), "branch": "main"}})
    assert patched.status_code == 200
    assert server.admin.get(f"/api/v2/procedures/{procedure_id}").json()["repository"] == {"url": str(tmp_path / "repo"), "branch": "main", "path": None}
    assert server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id}).json()["sha"] == sha
    escape = server.admin.patch(f"/api/v2/procedures/{procedure_id}", json={"repository": {"url": "x", "path": "../outside"}})
    assert escape.status_code == 422 and escape.json()["code"] == "invalid_path"


def test_station_sees_only_linked_procedures_with_run_counts(server: Server) -> None:
    station_id = server.station()
    linked, other = server.procedure("A"), server.procedure("B")
    server.link(station_id, linked)
    station = server.client(server.enroll(station_id)["api_key"])
    current = station.get("/api/v2/stations/current").json()
    assert current["id"] == station_id and current["name"] == "bench-1" and current["organization_slug"] == "local"
    assert [(p["id"], p["identifier"], p["name"], p["runs_count"]) for p in current["procedures"]] == [(linked, "a", "A", 0)]
    assert station.get(f"/api/v2/procedures/{other}").status_code == 403
    assert station.get(f"/api/v2/procedures/{linked}").status_code == 200
