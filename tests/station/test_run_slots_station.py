"""`tofu-tui run --procedure` of a procedure with slots, through a daemon and in process:
it follows every slot to its end and exits with the worst slot's status (as `tofu-tui
run PATH` does), not with the first slot's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll

SLOTS_YAML = """name: Two bays
version: "1.0"
unit: {auto_identify: true, serial_number: {default_value: SN1}, part_number: {default_value: PN1}}
execution: {strategy: phase_first, slots: [{name: Left}, {name: Right}]}
main: [{name: Check, python: phases:check}]
"""

SLOTS_PHASE = """def check(run):
    if run.slot_id == "right":
        raise RuntimeError("the right bay has no unit")
"""


@pytest.mark.parametrize("through", ["daemon", "in-process"])
def test_linked_run_with_slots_reports_every_slot(server: RealServer, home: Path, tmp_path: Path,
                                                  through: str) -> None:
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.commit({"procedure.yaml": SLOTS_YAML, "phases.py": SLOTS_PHASE})
    procedure_id = server.procedure("Two bays", repo.url, station_id)
    server.deploy(procedure_id)
    env = {"TOFU_TUI_HOME": str(home)}
    daemon = Daemon(home) if through == "daemon" else None
    try:
        if daemon is not None:
            daemon.event("deployment_pulled", status="active")
        result = run_cli(["run", "--procedure", "Two bays", "--json"], env=env)
    finally:
        if daemon is not None:
            daemon.stop()
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = [(e["slot"], e["outcome"]) for e in events if e["type"] == "run_finished"]
    assert ("left", "PASS") in finished and ("right", "ERROR") in finished
    assert result.returncode == 3, result.stderr  # ERROR: the worst slot, not the first
    if daemon is None:
        wait_until(lambda: len(server.runs()) == 2, what="both slots' runs on the server")
