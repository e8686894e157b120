"""`tofu-tui` itself, in a pseudo-terminal: with no daemon it runs the station in its
own process (and the CLI attaches to that engine); with the daemon running it
attaches, and quitting leaves the daemon running."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.station import Station, enrolled_station
from tests.integration.terminal import Terminal
from tests.station.daemonproc import Daemon, wait_until
from tests.station.realserver import RealServer


@pytest.fixture
def station(server: RealServer, tmp_path: Path) -> Station:
    return enrolled_station(server, tmp_path)


@pytest.mark.timeout(60)
def test_console_without_a_daemon_runs_the_engine_and_quit_stops_it(station: Station) -> None:
    console = Terminal([], station.env)
    try:
        console.wait_for("in-process")
        console.wait_for("Board test")
        status = json.loads(run_cli(["status", "--json"], env=station.env).stdout)
        assert status["daemon_running"] is True and status["station_name"] == "Bench 7"
        console.press("q")
        assert console.wait(30) == 0
    finally:
        console.close()
    assert not station.paths.control_socket.exists()
    status = json.loads(run_cli(["status", "--json"], env=station.env).stdout)
    assert status["daemon_running"] is False


@pytest.mark.timeout(60)
def test_console_attaches_to_the_daemon_and_quit_detaches(station: Station) -> None:
    daemon = Daemon(station.home)
    try:
        daemon.event("daemon_started")
        console = Terminal([], station.env)
        try:
            console.wait_for("attached")
            console.wait_for("Board test")
            console.press("q")
            assert console.wait(30) == 0
        finally:
            console.close()
        assert daemon.proc.poll() is None
        wait_until(lambda: json.loads(run_cli(["status", "--json"], env=station.env).stdout)["daemon_running"],
                   timeout=10, what="the daemon answering")
        # Attached again, then the daemon restarts: the console says it is reconnecting,
        # attaches to the new daemon by itself, and still quits cleanly.
        console = Terminal([], station.env)
        try:
            console.wait_for("attached")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
            console.wait_for("daemon restarting… reconnecting")
            daemon = Daemon(station.home)
            daemon.event("daemon_started")
            console.wait_for("Reconnected to the station daemon")
            console.press("q")
            assert console.wait(30) == 0
        finally:
            console.close()
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()


@pytest.mark.timeout(60)
def test_run_path_tui_answers_the_prompt_in_the_console(tmp_path: Path) -> None:
    from tests.integration.station import PHASES_PY, PROCEDURE_YAML

    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "procedure.yaml").write_text(PROCEDURE_YAML)
    (folder / "phases.py").write_text(PHASES_PY)
    console = Terminal(["run", str(folder), "--tui", "--serial", "S5", "--part", "P5"], {})
    try:
        console.wait_for("Inspection note")
        console.press("ok\r")
        console.wait_for("Run finished: PASS")
        console.press("q")
        assert console.wait(30) == 0  # the run's exit status: PASS
        console.wait_for("Board test: PASS")
    finally:
        console.close()


def queued_and_uploaded(station: Station) -> list[tuple[str, str]]:
    """(serial, outcome) of every run this station made: on the server or still queued."""
    queued = json.loads(run_cli(["queue", "ls", "--json"], env=station.env).stdout)
    return [(r["unit"]["serial_number"], r["outcome"]) for r in station.server.runs()] + \
        [(q["serial_number"], q["outcome"]) for q in queued]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("ending", ["SIGTERM", "hang-up"])
def test_signal_to_the_in_process_console_stops_the_run_and_keeps_it(station: Station, ending: str) -> None:
    """systemd/kill (SIGTERM) or a dropped SSH session (terminal gone, SIGHUP) while a
    run waits on its prompt: the run is stopped, recorded ABORTED, and the process ends."""
    console = Terminal([], station.env)
    try:
        console.wait_for("in-process")
        console.wait_for("on main")  # the deployment is active: a run can start
        for _ in range(10):  # the first key can land before the table holds the procedure
            console.press("r")
            try:
                console.wait_for("Identify unit", timeout=3)
                break
            except AssertionError:
                continue
        console.wait_for("Identify unit")
        console.press("S9\r")  # like a scanner: the form moves to the missing part number
        console.wait_for("Required.")
        console.press("P\r")
        console.wait_for("Inspection note")
        if ending == "SIGTERM":
            console.proc.send_signal(signal.SIGTERM)
        else:
            console.hang_up()
        console.wait(45)  # a spinning process on a dead terminal fails here
    finally:
        console.close()
    assert set(queued_and_uploaded(station)) == {("S9", "ABORTED")}
    assert len(station.server.runs()) <= 1
    assert not station.paths.control_socket.exists()
