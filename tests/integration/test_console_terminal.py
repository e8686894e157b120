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
        # Attached again, then the daemon stops: the console says so and still quits cleanly.
        console = Terminal([], station.env)
        try:
            console.wait_for("attached")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
            console.wait_for("The station closed the connection")
            console.press("q")
            assert console.wait(30) == 0
        finally:
            console.close()
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
