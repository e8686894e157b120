"""The API's surface: health, the OpenAPI document, install scripts, station removal."""

from __future__ import annotations

import httpx

from tests.server.conftest import Server, run_body
from tofu_tui.server.app import REPO_ROOT


def test_health_needs_no_key(server: Server) -> None:
    response = httpx.get(server.url + "/api/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_every_operation_declares_its_success_body_and_error_shape(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    undeclared = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            success = [code for code in op["responses"] if code.startswith("2")]
            schemas = [op["responses"][c].get("content", {}) for c in success]
            if not success or not all(schemas) or any(str(s.get("application/json", {}).get("schema", "x")) == "{}" for s in schemas):
                undeclared.append(f"{method.upper()} {path}")
            if path.startswith("/api/v2") and "404" not in op["responses"]:
                undeclared.append(f"{method.upper()} {path}: no error shape")
    assert undeclared == []
    run_body_schema = spec["paths"]["/api/v2/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert run_body_schema == {"$ref": "#/components/schemas/RunCreate"}
    assert "phases" in spec["components"]["schemas"]["RunCreate"]["properties"]
    assert spec["paths"]["/api/v2/stations/{id}/commands"]["post"]["responses"].keys() >= {"202"}


def test_install_scripts_are_served_when_present(server: Server) -> None:
    for name in ("install.sh", "install.ps1"):
        response = httpx.get(f"{server.url}/{name}")
        if (REPO_ROOT / name).is_file():
            assert response.status_code == 200 and response.text == (REPO_ROOT / name).read_text()
        else:
            assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_removing_a_station_archives_it_only_when_runs_reference_it(server: Server) -> None:
    procedure = server.procedure()
    used, unused = server.station("used"), server.station("unused")
    server.link(used, procedure)
    used_key = server.enroll(used)["api_key"]
    unused_key = server.enroll(unused)["api_key"]
    run = server.client(used_key).post("/api/v2/runs", json=run_body(procedure)).json()["id"]

    for station_id in (used, unused):
        assert server.admin.delete(f"/api/v2/stations/{station_id}").json() == {"id": station_id}
        assert server.admin.get(f"/api/v2/stations/{station_id}").status_code == 404
    for key in (used_key, unused_key):
        assert server.client(key).get("/api/cli/whoami").json()["code"] == "key_revoked"
    # The archived station's runs keep their author; the name is free again.
    assert server.admin.get(f"/api/v2/runs/{run}").json()["created_by_station"]["id"] == used
    assert server.admin.post("/api/v2/stations", json={"name": "used"}).status_code == 200
    assert [s["name"] for s in server.admin.get("/api/v2/stations").json()["data"]] == ["used"]


def test_duplicate_station_names_are_409(server: Server) -> None:
    server.station("bench")
    response = server.admin.post("/api/v2/stations", json={"name": "Bench"})
    assert response.status_code == 409 and "already exists" in response.json()["message"]


def test_a_station_can_be_created_linked_to_a_procedure(server: Server) -> None:
    procedure = server.procedure("FVT")
    created = server.admin.post("/api/v2/stations", json={"name": "bench", "procedure_id": procedure})
    assert created.status_code == 200
    station = server.admin.get(f"/api/v2/stations/{created.json()['id']}").json()
    assert [p["id"] for p in station["procedures"]] == [procedure]
    missing = server.admin.post("/api/v2/stations", json={"name": "other", "procedure_id": "nope"})
    assert missing.status_code == 404
    assert [s["name"] for s in server.admin.get("/api/v2/stations").json()["data"]] == ["bench"]
