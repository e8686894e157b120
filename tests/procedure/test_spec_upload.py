"""run-protocol.md `--upload`: the procedure id comes from `--procedure-id`, the link
file, TOFUPILOT_PROCEDURE_ID or, last, procedure.yaml's `id`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.procedure.runhelp import UNIT
from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll


def test_upload_takes_the_procedure_id_from_the_yaml_id_last(make_procedure, server: RealServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "station"
    enroll(server, home)
    folder = make_procedure(
        "id: yaml-proc-id\nname: Uploaded\n" + UNIT + "main:\n  - {name: M, python: phases.m:m}\n",
        {"phases/m.py": "def m():\n    pass\n"},
    )
    env = {"TOFU_TUI_HOME": str(home), "TOFUPILOT_PROCEDURE_ID": ""}
    result = run_cli(["run", str(folder), "--upload", "--json"], env=env)
    assert result.returncode == 0, result.stderr
    finished = json.loads(result.stdout.splitlines()[-1])
    assert finished["run"]["procedure_id"] == "yaml-proc-id"
    result = run_cli(["run", str(folder), "--upload", "--procedure-id", "flag-id"], env=env)
    assert result.returncode == 0, result.stderr
    queued = json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout)
    assert sorted(entry["procedure_id"] for entry in queued) == ["flag-id", "yaml-proc-id"]
    # without --upload the YAML id stays ignored (procedure-format §1): an unlinked local run
    result = run_cli(["run", str(folder), "--json"], env=env)
    assert json.loads(result.stdout.splitlines()[-1])["run"]["procedure_id"] is None
