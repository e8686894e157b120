"""The real daemon process (`tofu-tui --headless`) against a real HTTP server: runs on
commands from the stream and the control socket, deployments switching between runs,
signals, revocation."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.fakeserver import FakeServer
from tests.station.gitrepo import Repo, link
from tofu_tui.models.commands import PullCommand, RunCommand
from tofu_tui.station.control import CommandRefused, send_command
from tofu_tui.station.paths import station_paths


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "remote")


@pytest.fixture
def enrolled(fake: FakeServer, home: Path) -> Path:
    result = run_cli(["login", "--url", fake.url, "--token", fake.state.new_token()], env={"TOFU_TUI_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def daemon(enrolled: Path) -> Iterator[Daemon]:
    d = Daemon(enrolled)
    d.event("daemon_started")
    yield d
    d.stop()


def deploy(fake: FakeServer, repo: Repo, deployment_id: str, sha: str) -> None:
    fake.state.station["procedures"] = [link("p1", "Board test", deployment_id, sha, repo.url)]


def runs_on_server(fake: FakeServer) -> list[dict[str, object]]:
    return [fake.state.runs[r] for r in fake.state.run_order]


def test_runs_from_stream_and_control_socket_reach_the_server(fake: FakeServer, repo: Repo, daemon: Daemon,
                                                                enrolled: Path) -> None:
    paths = station_paths(enrolled)
    sha1 = repo.procedure("v1")
    deploy(fake, repo, "d1", sha1)
    pulled = run_cli(["pull"], env={"TOFU_TUI_HOME": str(enrolled)})  # through the daemon
    assert pulled.returncode == 0 and f"Board test: {sha1[:12]} active" in pulled.stdout
    daemon.event("deployment_pulled", deployment_id="d1", status="active")
    status = json.loads(run_cli(["status", "--json"], env={"TOFU_TUI_HOME": str(enrolled)}).stdout)
    assert status["daemon_running"] and status["procedures"][0]["active"]["sha"] == sha1

    # From the dashboard's stream, as an unattended station gets it.
    wait_until(lambda: fake.state.stream_connections, what="stream")
    fake.state.pending_commands.append({"name": "Run", "procedure_id": "p1", "serial_number": "SN1",
                                        "part_number": "PN1"})
    wait_until(lambda: len(fake.state.runs) == 1, what="first run uploaded")
    # From the control socket, by name.
    answer = send_command(paths, RunCommand(procedure_id="Board test", serial_number="SN2", part_number="PN1"))
    wait_until(lambda: len(fake.state.runs) == 2, what="second run uploaded")
    first, second = runs_on_server(fake)
    assert (first["serial_number"], second["serial_number"]) == ("SN1", "SN2")
    for run in (first, second):
        assert run["outcome"] == "PASS" and run["deployment_id"] == "d1" and run["procedure_id"] == "p1"
        assert run["procedure_version"] == "1.0" and str(run["client_run_ref"]).endswith(("_1", "_2"))
    assert any(e.get("type") == "run_finished" and e["execution_id"] == answer["execution_id"]
               for e in fake.state.stream_events)
    assert (paths.logs / f"{answer['execution_id']}.jsonl").exists()
    daemon.event("upload_succeeded")

    with pytest.raises(CommandRefused, match="No procedure 'ghost'"):
        send_command(paths, RunCommand(procedure_id="ghost"))
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_new_deployment_during_a_run_applies_to_the_next_run(fake: FakeServer, repo: Repo, daemon: Daemon,
                                                             enrolled: Path) -> None:
    paths = station_paths(enrolled)
    deploy(fake, repo, "d1", repo.procedure("v1", delay=2.0))
    send_command(paths, PullCommand())
    send_command(paths, RunCommand(procedure_id="p1", serial_number="SN1", part_number="PN1"))
    with pytest.raises(CommandRefused, match="already in progress"):
        send_command(paths, RunCommand(procedure_id="p1", serial_number="SN-X", part_number="PN1"))
    deploy(fake, repo, "d2", repo.procedure("v2"))
    pulled = send_command(paths, PullCommand())
    (proc,) = pulled["procedures"]
    assert proc["active"]["id"] == "d1" and proc["staged"]["id"] == "d2"
    daemon.event("deployment_pulled", deployment_id="d2", status="active")
    send_command(paths, RunCommand(procedure_id="p1", serial_number="SN2", part_number="PN1"))
    wait_until(lambda: len(fake.state.runs) == 2, what="both runs uploaded")
    assert [(r["serial_number"], r["deployment_id"]) for r in runs_on_server(fake)] == [("SN1", "d1"),
                                                                                     ("SN2", "d2")]


def test_first_signal_lets_the_run_finish_second_cancels(fake: FakeServer, repo: Repo, enrolled: Path) -> None:
    paths = station_paths(enrolled)
    deploy(fake, repo, "d1", repo.procedure("slow", delay=1.5))
    daemon = Daemon(enrolled)
    try:
        daemon.event("deployment_pulled", status="active")
        send_command(paths, RunCommand(procedure_id="p1", serial_number="SN1", part_number="PN1"))
        daemon.event("phase_started")
        daemon.signal(signal.SIGTERM)
        daemon.event("daemon_stopping")
        with pytest.raises(CommandRefused, match="stopping"):
            send_command(paths, RunCommand(procedure_id="p1", serial_number="SN2", part_number="PN1"))
        assert daemon.wait() == 0
        assert daemon.event("run_finished")["outcome"] == "PASS"
    finally:
        daemon.stop()

    deploy(fake, repo, "d2", repo.procedure("slower", delay=30))
    daemon = Daemon(enrolled)
    try:
        daemon.event("deployment_pulled", deployment_id="d2", status="active")
        send_command(paths, RunCommand(procedure_id="p1", serial_number="SN3", part_number="PN1"))
        daemon.event("phase_started")
        daemon.signal(signal.SIGTERM)
        daemon.event("daemon_stopping")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        assert daemon.event("run_finished")["outcome"] == "ABORTED"
    finally:
        daemon.stop()
    # Both runs were committed to the queue before the daemon exited; the aborted one too.
    queued = json.loads(run_cli(["queue", "ls", "--json"], env={"TOFU_TUI_HOME": str(enrolled)}).stdout)
    serials = sorted([r["serial_number"] for r in runs_on_server(fake)] + [q["serial_number"] for q in queued])
    assert serials == ["SN1", "SN3"]


def test_revoked_key_exits_75_and_one_daemon_per_station(fake: FakeServer, enrolled: Path, daemon: Daemon) -> None:
    second = Daemon(enrolled)
    assert second.wait() == 1
    assert second.event("daemon_already_running")
    fake.state.keys.clear()
    send_command(station_paths(enrolled), PullCommand())
    assert daemon.wait() == 75
    assert "setup token" in daemon.event("credentials_revoked")["message"]


def test_not_enrolled_daemon_says_to_log_in(home: Path) -> None:
    d = Daemon(home)
    assert d.wait() == 75
    assert "tofu-tui login" in d.event("not_enrolled")["message"]


def test_control_socket_is_private_and_streams_a_runs_events(fake: FakeServer, repo: Repo, daemon: Daemon,
                                                             enrolled: Path) -> None:
    import asyncio
    import os
    import stat

    from tofu_tui.models.events import Event
    from tofu_tui.station.control import request_status
    from tofu_tui.station.remote_run import run_via_daemon

    paths = station_paths(enrolled)
    assert stat.S_IMODE(os.stat(paths.control_socket).st_mode) == 0o600
    deploy(fake, repo, "d1", repo.procedure("v1"))
    send_command(paths, PullCommand())
    seen: list[Event] = []
    finished = asyncio.run(run_via_daemon(paths, RunCommand(procedure_id="board-test", serial_number="SN9",
                                                            part_number="PN1"), seen.append))
    assert finished.outcome == "PASS" and finished.run["serial_number"] == "SN9"
    kinds = [e.type for e in seen]
    assert kinds[0] == "run_started" and "phase_log" in kinds and kinds[-1] == "run_finished"
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # nothing missed
    status = request_status(paths)
    assert status.run_in_flight is None and status.procedures[0].runs_today == 1
    wait_until(lambda: len(fake.state.runs) == 1, what="upload")


def test_run_procedure_without_a_daemon_uses_the_engine_in_process(fake: FakeServer, repo: Repo,
                                                                   enrolled: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    deploy(fake, repo, "d1", repo.procedure("v1"))
    script = ("import sys; from tofu_tui.cli.station_cmd import run_linked_procedure; "
              "sys.exit(run_linked_procedure('Board test', unit={'serial_number': 'SN-1P', 'part_number': 'PN'}, "
              "ui_values=None, as_json=True))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=cli_env({"TOFU_TUI_HOME": str(enrolled)}))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    (run,) = runs_on_server(fake)
    assert run["serial_number"] == "SN-1P" and run["deployment_id"] == "d1"
    refused = subprocess.run([sys.executable, "-c", script.replace("'Board test'", "'ghost'")],
                             capture_output=True, text=True, timeout=120, env=cli_env({"TOFU_TUI_HOME": str(enrolled)}))
    assert refused.returncode == 2 and "No procedure 'ghost'" in refused.stderr


def test_an_attached_console_answers_the_identify_prompt(fake: FakeServer, repo: Repo, daemon: Daemon,
                                                         enrolled: Path) -> None:
    import asyncio

    from tofu_tui.models.commands import UiResponseCommand
    from tofu_tui.models.events import RunFinished, UiRequest
    from tofu_tui.station.control import ControlClient

    paths = station_paths(enrolled)
    deploy(fake, repo, "d1", repo.procedure("v1"))
    send_command(paths, PullCommand())

    async def operate() -> RunFinished:
        async with ControlClient(paths) as console:
            await console.subscribe()
            await console.command(RunCommand(procedure_id="p1"))  # no unit: the operator scans it
            async for event in console.events():
                if isinstance(event, UiRequest):
                    with pytest.raises(CommandRefused, match=r"(?i)part"):
                        await console.command(UiResponseCommand(request_id=event.request_id,
                                                                values={"serial_number": "SN-OP"}))
                    await console.command(UiResponseCommand(request_id=event.request_id,
                                                            values={"serial_number": "SN-OP", "part_number": "PN"}))
                if isinstance(event, RunFinished):
                    return event
        raise AssertionError("the daemon went away")

    finished = asyncio.run(asyncio.wait_for(operate(), 60))
    assert finished.outcome == "PASS" and finished.run["serial_number"] == "SN-OP"


def test_third_signal_exits_at_once(fake: FakeServer, repo: Repo, enrolled: Path) -> None:
    import time

    deploy(fake, repo, "d1", repo.procedure("stuck", delay=60))
    daemon = Daemon(enrolled)
    try:
        daemon.event("deployment_pulled", status="active")
        send_command(station_paths(enrolled), RunCommand(procedure_id="p1", serial_number="SN1", part_number="PN1"))
        daemon.event("phase_started")
        for name in ("daemon_stopping", "run_cancelling", "run_killed"):
            daemon.signal(signal.SIGTERM)
            daemon.event(name)
            time.sleep(0.1)
        assert daemon.wait(20) == 0
        daemon.event("daemon_stopped")
    finally:
        daemon.stop()
