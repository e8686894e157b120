"""TofuPilot's official Python client (`tofupilot.v2`), unchanged, against the local server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tofupilot.v2 import TofuPilot

from tests.server.conftest import Server


def official(server: Server, key: str | None = None) -> TofuPilot:
    return TofuPilot(api_key=key or server.key, server_url=server.url + "/api")


def test_stations_create_list_get_update_remove(server: Server) -> None:
    client = official(server)
    created = client.stations.create(name="Bench A")
    listed = client.stations.list()
    assert [s.name for s in listed.data] == ["Bench A"]
    assert listed.meta.has_more is False

    got = client.stations.get(id=created.id)
    assert (got.id, got.name, got.procedures) == (created.id, "Bench A", [])

    updated = client.stations.update(id=created.id, name="Bench B")
    assert updated.name == "Bench B"
    assert client.stations.get(id=created.id).name == "Bench B"

    client.stations.remove(id=created.id)
    assert client.stations.list().data == []


def test_procedures_and_runs_with_phases_and_measurements(server: Server) -> None:
    client = official(server)
    procedure = client.procedures.create(name="Final test")
    assert [p.name for p in client.procedures.list().data] == ["Final test"]
    assert client.procedures.get(id=procedure.id).name == "Final test"
    client.procedures.update(id=procedure.id, name="Final functional test")
    assert client.procedures.get(id=procedure.id).name == "Final functional test"

    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    run = client.runs.create(
        outcome="FAIL",
        procedure_id=procedure.id,
        started_at=t0,
        ended_at=t0 + timedelta(seconds=4),
        serial_number="SN-42",
        part_number="PCB-7",
        client_run_ref="inst_1",
        metadata={"fixture": "F3", "temperature": 23.5},
        phases=[
            {
                "name": "power",
                "outcome": "FAIL",
                "started_at": t0,
                "ended_at": t0 + timedelta(seconds=2),
                "measurements": [
                    {
                        "name": "vcc",
                        "outcome": "FAIL",
                        "measured_value": 4.2,
                        "units": "V",
                        "validators": [{"operator": ">=", "expected_value": 4.5, "outcome": "FAIL"}],
                    },
                    {"name": "label", "outcome": "PASS", "measured_value": "OK"},
                ],
            },
            {"name": "flash", "outcome": "PASS", "started_at": t0 + timedelta(seconds=2), "ended_at": t0 + timedelta(seconds=4)},
        ],
        logs=[{"level": "ERROR", "timestamp": t0, "message": "vcc low", "source_file": "power.py", "line_number": 12}],
    )
    # The same client_run_ref never makes a second run.
    again = client.runs.create(
        outcome="FAIL", procedure_id=procedure.id, started_at=t0, ended_at=t0 + timedelta(seconds=4),
        serial_number="SN-42", client_run_ref="inst_1",
    )
    assert again.id == run.id

    got = client.runs.get(id=run.id)
    assert got.outcome == "FAIL"
    assert got.unit.serial_number == "SN-42" and got.unit.part.number == "PCB-7"
    assert [p.name for p in got.phases] == ["power", "flash"]
    vcc = got.phases[0].measurements[0]
    assert (vcc.name, vcc.outcome, vcc.measured_value, vcc.units) == ("vcc", "FAIL", 4.2, "V")
    assert vcc.validators[0].operator == ">=" and vcc.validators[0].expected_value == 4.5
    assert got.logs[0].message == "vcc low"
    assert got.metadata == {"fixture": "F3", "temperature": 23.5}

    client.runs.create(
        outcome="PASS", procedure_id=procedure.id, started_at=t0 + timedelta(hours=1),
        ended_at=t0 + timedelta(hours=1, seconds=3), serial_number="SN-43",
    )
    assert {r.unit.serial_number for r in client.runs.list().data} == {"SN-42", "SN-43"}
    only_fail = client.runs.list(outcomes=["FAIL"])
    assert [r.id for r in only_fail.data] == [run.id]
    page = client.runs.list(limit=1)
    assert page.meta.has_more is True and page.meta.next_cursor == 1
    assert len(client.runs.list(limit=1, cursor=page.meta.next_cursor).data) == 1
    assert client.procedures.get(id=procedure.id).runs_count == 2

    client.runs.delete(ids=[run.id])
    assert [r.unit.serial_number for r in client.runs.list().data] == ["SN-43"]


def test_attachment_upload_through_the_official_client(server: Server, tmp_path: Path) -> None:
    client = official(server)
    procedure = client.procedures.create(name="FVT")
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    run = client.runs.create(outcome="PASS", procedure_id=procedure.id, started_at=t0, ended_at=t0, serial_number="SN-1")
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")

    attachment_id = client.runs.attachments.upload(id=run.id, file=report)

    got = client.runs.get(id=run.id)
    assert [(a.id, a.name, a.size) for a in got.attachments] == [(attachment_id, "report.csv", 8)]
    downloaded = client.runs.attachments.download(got.attachments[0], dest=tmp_path / "back.csv")
    assert downloaded.read_text() == "a,b\n1,2\n"


def test_initialize_finalize_and_link_flow(server: Server, tmp_path: Path) -> None:
    client = official(server)
    procedure = client.procedures.create(name="FVT")
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    run = client.runs.create(outcome="PASS", procedure_id=procedure.id, started_at=t0, ended_at=t0, serial_number="SN-1")
    init = client.attachments.initialize(name="trace.bin")
    assert httpx.put(init.upload_url, content=b"\x00\x01\x02").status_code == 200
    final = client.attachments.finalize(id=init.id)
    client.runs.update(id=run.id, attachments=[init.id])
    assert httpx.get(final.url).content == b"\x00\x01\x02"
    assert [a.name for a in client.runs.get(id=run.id).attachments] == ["trace.bin"]


def test_station_key_get_current_and_whoami(server: Server) -> None:
    station_id = server.station("Bench A")
    procedure_id = server.procedure("FVT")
    server.link(station_id, procedure_id)
    key = server.enroll(station_id)["api_key"]
    client = official(server, key)
    current = client.stations.get_current()
    assert current.id == station_id
    assert [p.id for p in current.procedures] == [procedure_id]
    identity = client.identity.whoami()
    assert identity.type == "station" and identity.station is not None and identity.station.id == station_id
    assert official(server).identity.whoami().type == "user"


def test_errors_reach_the_official_client_as_its_typed_errors(server: Server) -> None:
    from tofupilot.v2 import errors

    admin, stranger = official(server), official(server, "tofu_u_wrong")
    with pytest.raises(errors.ErrorNOTFOUND):
        admin.stations.get(id="nope")
    with pytest.raises(errors.ErrorUNAUTHORIZED):
        stranger.stations.list()


def test_deployments_and_current_station_parse_in_the_official_client(server: Server, tmp_path: Path) -> None:
    from tests.server.conftest import make_repo

    _repo, sha = make_repo(tmp_path / "repo", {"procedure.yaml": "name: FVT\n"}, message="release 1")
    station_id = server.station("Bench A")
    procedure_id = server.procedure("FVT", {"url": str(tmp_path / "repo"), "branch": "main"})
    server.link(station_id, procedure_id)
    deployment_id = server.admin.post("/api/v2/deployments", json={"procedure_id": procedure_id}).json()["id"]

    admin = official(server)
    listed = admin.deployments.list(procedure_ids=[procedure_id])
    assert [(d.id, d.commit.sha if d.commit else None, d.status) for d in listed.data] == [(deployment_id, sha, "ready")]
    got = admin.deployments.get(id=deployment_id)
    assert got.commit is not None and got.commit.message == "release 1" and got.commit.branch is not None
    assert [s.id for s in got.stations] == [station_id]
    assert admin.stations.get(id=station_id).procedures[0].deployment.commit.sha == sha  # type: ignore[union-attr]

    station = official(server, server.enroll(station_id)["api_key"])
    current = station.stations.get_current()
    deployment = current.procedures[0].deployment
    assert deployment is not None and deployment.commit is not None and deployment.commit.sha == sha
    assert deployment.repository is not None and deployment.repository.name == "repo"
