"""kill -9 of the daemon at random moments during runs and uploads, then a final
daemon drains: every run the station finished reaches the server exactly once.
Shared by the test (10 kills) and benchmarks/soak_station_kill9.py (50)."""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tofu_tui.models.commands import RunCommand
from tofu_tui.station.control import ControlError, send_command
from tofu_tui.station.paths import station_paths

ATTACHING_PHASE = """def check(log, attach):
    log.info("attaching")
    attach.data(b"trace", "trace.txt")
"""


@dataclass
class KillLoopResult:
    kills: int
    runs_finished: int  # committed to the station's queue
    runs_on_server: int
    duplicates: int
    missing: int
    attachment_anomalies: int  # runs without exactly one attachment, plus hidden unfinished records
    seconds: float


def kill_loop(server: RealServer, home: Path, work: Path, kills: int, seed: int = 0) -> KillLoopResult:
    rng = random.Random(seed)
    started = time.monotonic()
    station_id, token = server.station()
    login = run_cli(["login", "--url", server.url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
    assert login.returncode == 0, login.stderr
    repo = Repo(work / "repo")
    repo.procedure("v1", extra={"phases.py": ATTACHING_PHASE})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    server.deploy(procedure_id)
    paths = station_paths(home)
    for i in range(kills):
        daemon = Daemon(home)
        try:
            if i == 0:
                daemon.event("deployment_pulled", status="active")
            else:
                daemon.event("daemon_started")
            deadline = time.monotonic() + rng.uniform(0.2, 2.5)
            k = 0
            while time.monotonic() < deadline:
                try:
                    send_command(paths, RunCommand(procedure_id=procedure_id, serial_number=f"SN{i}-{k}",
                                                   part_number="PN1"), timeout=5)
                    k += 1
                except ControlError:
                    pass  # a run is in flight
                time.sleep(rng.uniform(0.0, 0.1))
        finally:
            daemon.proc.kill()  # SIGKILL: no cleanup at all
            daemon.wait(10)
    final = Daemon(home)
    try:
        final.event("daemon_started")

        def drained() -> bool:
            conn = sqlite3.connect(paths.state_db)
            try:
                return conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
            finally:
                conn.close()

        wait_until(drained, timeout=120, what="the queue to drain")
    finally:
        final.stop()
    conn = sqlite3.connect(paths.state_db)
    local = [row[0] for row in conn.execute("SELECT client_run_ref FROM run_history")]
    conn.close()
    runs = server.runs()
    remote = [run["client_run_ref"] for run in runs]
    anomalies = sum(1 for run in runs if len(server.run(run["id"])["attachments"]) != 1)
    # Hidden ones too: a record the server made but never got bytes for (a crash after
    # the create) does not show on the run, yet it must not exist either.
    with sqlite3.connect(server.data / "server.db") as db:
        anomalies += db.execute("SELECT COUNT(*) FROM attachments WHERE status != 'finalized'").fetchone()[0]
    return KillLoopResult(kills=kills, runs_finished=len(local), runs_on_server=len(remote),
                          duplicates=len(remote) - len(set(remote)), missing=len(set(local) - set(remote)),
                          attachment_anomalies=anomalies, seconds=time.monotonic() - started)
