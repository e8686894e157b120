"""procedure-format §5: a station-scoped plug lives as long as the station, not one run.
Under the daemon, two runs talk to the same instance; the daemon's exit ends it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.fakeserver import FakeServer
from tests.station.gitrepo import Repo, link
from tofu_tui.models.commands import PullCommand, RunCommand
from tofu_tui.station.control import send_command
from tofu_tui.station.paths import station_paths
from tofu_tui.station.remote_run import run_via_daemon

PROCEDURE = """name: Board test
version: "1.0"
plugs:
  - {name: Counter, python: "plugs/counter.py:Counter", scope: station}
main:
  - name: check
    python: phases:check
"""

PHASES = """def check(counter, measurements):
    measurements.n = counter.bump()
    measurements.pid = counter.pid()
"""

PLUG = """import os


class Counter:
    def __init__(self):
        self.count = 0

    def bump(self):
        self.count += 1
        return self.count

    def pid(self):
        return os.getpid()
"""


def _measured(run: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["measured_value"] for m in run["phases"][0]["measurements"]}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_station_plug_is_kept_across_runs_and_ends_with_the_daemon(fake: FakeServer, home: Path,
                                                                     tmp_path: Path) -> None:
    login = run_cli(["login", "--url", fake.url, "--token", fake.state.new_token()], env={"TOFU_TUI_HOME": str(home)})
    assert login.returncode == 0, login.stderr
    enrolled = home
    repo = Repo(tmp_path / "remote")
    sha = repo.commit({"procedure.yaml": PROCEDURE, "phases.py": PHASES, "plugs/counter.py": PLUG})
    fake.state.station["procedures"] = [link("p1", "Board test", "d1", sha, repo.url)]
    daemon = Daemon(enrolled)
    try:
        daemon.event("daemon_started")
        paths = station_paths(enrolled)
        send_command(paths, PullCommand())
        seen: list[dict[str, Any]] = []
        for serial in ("SN1", "SN2"):
            finished = asyncio.run(run_via_daemon(
                paths, RunCommand(procedure_id="board-test", serial_number=serial, part_number="PN1"), lambda e: None))
            assert finished.outcome == "PASS", finished.run
            seen.append(_measured(finished.run))
        assert [s["n"] for s in seen] == [1, 2]  # the same instance counted both runs
        assert seen[0]["pid"] == seen[1]["pid"]
        plug_pid = int(seen[0]["pid"])
        assert _alive(plug_pid)
    finally:
        daemon.stop()
    wait_until(lambda: not _alive(plug_pid), what="the station plug to end with the daemon")
