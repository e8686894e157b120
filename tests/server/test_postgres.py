"""The same server code on PostgreSQL (`--db`): a throwaway cluster in tmp_path.

Skipped where PostgreSQL's binaries or the `postgres` extra (psycopg) are missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import run_body
from tests.server.fixtures import start_server

pytest.importorskip("psycopg")
pytestmark = pytest.mark.skipif(not shutil.which("initdb") or not shutil.which("pg_ctl"), reason="no PostgreSQL binaries")


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root: run the cluster as the 'postgres' user then.
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    return command


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if os.geteuid() == 0 and shutil.which("su") is None:
        pytest.skip("running as root without su")
    # Not under tmp_path: the 'postgres' user must reach it through world-searchable parents.
    folder = Path(tempfile.mkdtemp(prefix="tofu-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(_as_postgres(["initdb", "-D", f"{folder}/data", "-A", "trust", "-U", "tofu"]), check=True, capture_output=True)
    options = f"'-k {folder} -p {port} -h 127.0.0.1'"
    subprocess.run(_as_postgres(["pg_ctl", "-D", f"{folder}/data", "-o", options, "-l", f"{folder}/log", "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://tofu@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", f"{folder}/data", "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_enroll_and_runs_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    with start_server(tmp_path / "server", db_url=postgres_url) as (url, key, _data, _handle):
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        station_id = admin.post("/api/v2/stations", json={"name": "bench"}).json()["id"]
        procedure_id = admin.post("/api/v2/procedures", json={"name": "FVT"}).json()["id"]
        assert admin.post(f"/api/v2/stations/{station_id}/procedures", json={"procedure_id": procedure_id}).status_code == 200
        token = admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"]
        station_key = httpx.post(url + "/api/cli/login/redeem", json={"token": token}).json()["api_key"]
        station = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {station_key}"})

        body = run_body(procedure_id, client_run_ref="inst_1")
        first = station.post("/api/v2/runs", json=body)
        assert first.status_code == 200
        assert station.post("/api/v2/runs", json=body).json() == first.json()
        got = admin.get(f"/api/v2/runs/{first.json()['id']}").json()
        assert got["created_by_station"]["id"] == station_id and len(got["phases"]) == 2
        assert [r["id"] for r in admin.get("/api/v2/runs", params={"serial_numbers": ["SN-001"]}).json()["data"]] == [first.json()["id"]]
        assert station.post("/api/cli/heartbeat", json={}).json()["commands"][0]["name"] == "Pull"
        assert len(admin.get(f"/api/v2/stations/{station_id}/uptime").json()["days"]) == 90
