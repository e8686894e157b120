"""Fixtures for the local dashboard's tests: the real server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from tests.server.fixtures import FakeClock, running_server, start_server

__all__ = ["FakeClock", "running_server"]


@dataclass
class Server:
    url: str
    key: str
    data_dir: Path
    admin: httpx.Client
    clock: FakeClock | None
    handle: Any

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def station(self, name: str = "bench-1") -> str:
        response = self.admin.post("/api/v2/stations", json={"name": name})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def procedure(self, name: str = "FVT", repository: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"name": name}
        if repository:
            body["repository"] = repository
        response = self.admin.post("/api/v2/procedures", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def link(self, station_id: str, procedure_id: str) -> None:
        response = self.admin.post(f"/api/v2/stations/{station_id}/procedures", json={"procedure_id": procedure_id})
        assert response.status_code == 200, response.text

    def enroll(self, station_id: str) -> dict[str, Any]:
        token = self.admin.post(f"/api/v2/stations/{station_id}/setup-token").json()["token"]
        response = httpx.post(
            self.url + "/api/cli/login/redeem",
            json={"token": token, "hostname": "bench", "os": "linux", "platform": "x86_64", "mac_address": "00:11:22:33:44:55", "cli_version": "0.1.0"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock) -> Iterator[Server]:
    with start_server(tmp_path / "server", clock=clock) as (url, key, data_dir, handle):
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        try:
            yield Server(url, key, data_dir, admin, clock, handle)
        finally:
            admin.close()


def run_body(procedure_id: str, *, serial: str = "SN-001", outcome: str = "PASS", phases: int = 2, measurements: int = 2, start: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A realistic `POST /v2/runs` body."""
    t0 = start or datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    body: dict[str, Any] = {
        "outcome": outcome,
        "procedure_id": procedure_id,
        "started_at": t0.isoformat(),
        "ended_at": (t0 + timedelta(seconds=phases + 1)).isoformat(),
        "serial_number": serial,
        "part_number": "PCB-A",
        "revision_number": "B",
        "phases": [
            {
                "name": f"phase_{p}",
                "outcome": "PASS",
                "started_at": (t0 + timedelta(seconds=p)).isoformat(),
                "ended_at": (t0 + timedelta(seconds=p + 1)).isoformat(),
                "measurements": [
                    {
                        "name": f"m_{p}_{m}",
                        "outcome": "PASS",
                        "measured_value": 3.3 + m / 10,
                        "units": "V",
                        "validators": [{"operator": ">=", "expected_value": 3.0, "outcome": "PASS"}],
                    }
                    for m in range(measurements)
                ],
            }
            for p in range(phases)
        ],
        "logs": [{"level": "INFO", "timestamp": t0.isoformat(), "message": "hello", "source_file": "x.py", "line_number": 3}],
    }
    body.update(extra)
    return body


def make_repo(path: Path, files: dict[str, str] | None = None, *, branch: str = "main", message: str = "first") -> tuple[pygit2.Repository, str]:
    """A real Git repository with one commit on `branch`; returns (repo, sha)."""
    repo = pygit2.init_repository(str(path), initial_head=branch)
    return repo, commit(repo, files or {"procedure.yaml": "name: FVT\n"}, message)


def commit(repo: pygit2.Repository, files: dict[str, str], message: str) -> str:
    workdir = Path(repo.workdir)
    for name, text in files.items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        repo.index.add(name)
    repo.index.write()
    tree = repo.index.write_tree()
    signature = pygit2.Signature("Test Bench", "bench@example.com")
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return str(repo.create_commit("HEAD", signature, signature, message, tree, parents))
