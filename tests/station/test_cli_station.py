"""`tofu-tui status`, `pull` and `doctor` without a daemon running."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.station.fakeserver import FakeServer
from tests.station.gitrepo import Repo, link


def test_pull_status_and_doctor_without_a_daemon(fake: FakeServer, home: Path, tmp_path: Path) -> None:
    env = {"TOFU_TUI_HOME": str(home)}
    assert run_cli(["login", "--url", fake.url, "--token", fake.state.new_token()], env=env).returncode == 0
    repo = Repo(tmp_path / "repo")
    good = repo.procedure("v1")
    fake.state.station["procedures"] = [link("p1", "Board test", "d1", good, repo.url)]
    pulled = run_cli(["pull"], env=env)
    assert pulled.returncode == 0 and f"Board test: {good[:12]} active" in pulled.stdout

    status = run_cli(["status"], env=env)
    assert status.returncode == 0
    assert "Daemon:    not running" in status.stdout and good[:8] in status.stdout
    data = json.loads(run_cli(["status", "--json"], env=env).stdout)
    assert data["daemon_running"] is False and data["enrolled"] and data["procedures"][0]["active"]["id"] == "d1"

    fake.state.station["procedures"] = [link("p1", "Board test", "d2", "f" * 40, repo.url)]
    pulled = run_cli(["pull"], env=env)
    assert "failed: commit ffffffffffff is not in" in pulled.stdout
    assert "next: ffffffff failed" in run_cli(["status"], env=env).stdout

    doctor = run_cli(["doctor"], env=env)
    assert doctor.returncode == 1  # the deployed commit is missing
    assert "[ok  ] server" in doctor.stdout and "[ok  ] state database" in doctor.stdout
    assert "[FAIL] git Board test" in doctor.stdout


def test_status_and_doctor_when_not_enrolled(home: Path) -> None:
    env = {"TOFU_TUI_HOME": str(home)}
    assert "(not enrolled)" in run_cli(["status"], env=env).stdout
    doctor = run_cli(["doctor"], env=env)
    assert doctor.returncode == 1 and "[FAIL] credentials" in doctor.stdout and "tofu-tui login" in doctor.stdout
    assert "tofu-tui login" in run_cli(["pull"], env=env).stderr
