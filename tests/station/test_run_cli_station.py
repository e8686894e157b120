"""`tofu-tui run` through the station: `--upload` queues a local run for the daemon,
`--procedure` runs a linked procedure's active deployment (no daemon: in process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tests.station.test_real_server import MEASURING_PHASE, enroll


def test_run_upload_queues_then_the_daemon_uploads(server: RealServer, home: Path, tmp_path: Path) -> None:
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": MEASURING_PHASE})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    env = {"TOFU_TUI_HOME": str(home)}

    result = run_cli(["run", str(repo.path), "--upload", "--procedure-id", procedure_id,
                      "--serial", "SN-LOCAL", "--part", "PN1", "--json"], env=env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "run_finished"  # the queue note goes to stderr, not the stream
    assert "Queued for upload" in result.stderr
    [entry] = json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout)
    assert entry["serial_number"] == "SN-LOCAL" and entry["procedure_id"] == procedure_id

    daemon = Daemon(home)
    try:
        (summary,) = wait_until(lambda: server.runs(), what="the queued run on the server")
        daemon.event("upload_succeeded")
    finally:
        daemon.stop()
    run = server.run(summary["id"])
    assert run["unit"]["serial_number"] == "SN-LOCAL"
    assert [a["name"] for a in run["attachments"]] == ["trace.txt"]
    assert json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout) == []


def test_run_upload_without_a_procedure_id_runs_nothing(server: RealServer, home: Path, tmp_path: Path) -> None:
    enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": MEASURING_PHASE})
    result = run_cli(["run", str(repo.path), "--upload", "--serial", "SN-1", "--part", "PN1"],
                     env={"TOFU_TUI_HOME": str(home), "TOFUPILOT_PROCEDURE_ID": ""})
    assert result.returncode == 2
    assert "--procedure-id" in result.stderr


def test_run_linked_procedure_in_process(server: RealServer, home: Path, tmp_path: Path) -> None:
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": MEASURING_PHASE})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    deployment_id = server.deploy(procedure_id)
    result = run_cli(["run", "--procedure", "Board test", "--serial", "SN-LINKED", "--part", "PN1", "--json"],
                     env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    finished = [json.loads(line) for line in result.stdout.splitlines()][-1]
    assert finished["type"] == "run_finished" and finished["outcome"] == "PASS"
    (summary,) = wait_until(lambda: server.runs(), what="the linked run on the server")
    run = server.run(summary["id"])
    assert run["deployment_id"] == deployment_id
    assert run["unit"]["serial_number"] == "SN-LINKED"

    unknown = run_cli(["run", "--procedure", "No such procedure", "--serial", "SN-2"], env={"TOFU_TUI_HOME": str(home)})
    assert unknown.returncode != 0
    assert "No such procedure" in unknown.stderr
