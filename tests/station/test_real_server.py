"""The station against the real local server (`tofu-tui server start`, a subprocess):
a `Run` from the dashboard reaches the server with its attachment; runs made while
the server is down are uploaded in order with their original timestamps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tofu_tui.models.commands import PullCommand, RunCommand
from tofu_tui.station.control import send_command
from tofu_tui.station.paths import station_paths

MEASURING_PHASE = """def check(log, measurements, attach):
    log.info("measuring")
    measurements.voltage = 3.3
    attach.data(b"scope trace", "trace.txt")
"""


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[RealServer]:
    s = RealServer(tmp_path / "server").start()
    try:
        yield s
    finally:
        s.close()


def enroll(server: RealServer, home: Path) -> str:
    station_id, token = server.station()
    result = run_cli(["login", "--url", server.url], env={"TOFU_TUI_HOME": str(home), "TOFU_TUI_TOKEN": token})
    assert result.returncode == 0, result.stderr
    return station_id


def test_run_command_from_the_dashboard_reaches_the_server(server: RealServer, home: Path, tmp_path: Path) -> None:
    station_id = enroll(server, home)
    assert "valid" in run_cli(["whoami"], env={"TOFU_TUI_HOME": str(home)}).stdout
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": MEASURING_PHASE})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    deployment_id = server.deploy(procedure_id)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", deployment_id=deployment_id, status="active")
        server.command(station_id, "Run", procedure_id=procedure_id, serial_number="SN-E2E", part_number="PN1")
        (summary,) = wait_until(lambda: server.runs(), what="the run on the server")
        daemon.event("upload_succeeded")
        run = server.run(summary["id"])
        assert run["outcome"] == "PASS", run["phases"]
        assert run["deployment_id"] == deployment_id
        assert run["unit"]["serial_number"] == "SN-E2E"
        assert run["phases"][0]["measurements"][0]["measured_value"] == 3.3
        assert [a["name"] for a in run["attachments"]] == ["trace.txt"]
        assert httpx.get(run["attachments"][0]["download_url"]).content == b"scope trace"
        assert not any((home / "data" / "attachments").iterdir())  # the queue's copy is gone once confirmed
        uptime = server.call("GET", f"/v2/stations/{station_id}/uptime", days=1)
        assert uptime["connection_status"] == "connected" and uptime["days"][-1]["uptime"] is not None
        status = json.loads(run_cli(["status", "--json"], env={"TOFU_TUI_HOME": str(home)}).stdout)
        assert status["connected"] and status["procedures"][0]["runs_today"] == 1
        assert status["queue"] == {"pending": 0, "backoff": 0, "parked": 0}
        assert status["uptime"]["days"][-1]["uptime"] is not None and status["uptime"]["days"][0]["uptime"] is None
    finally:
        daemon.stop()


def test_server_down_then_back_uploads_in_order_with_original_timestamps(server_process: RealServer, home: Path,
                                                                          tmp_path: Path) -> None:
    server = server_process
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1")
    procedure_id = server.procedure("Board test", repo.url, station_id)
    server.deploy(procedure_id)
    paths = station_paths(home)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", status="active")
        server.stop()
        for serial in ("SN1", "SN2", "SN3"):
            answer = send_command(paths, RunCommand(procedure_id=procedure_id, serial_number=serial,
                                                    part_number="PN1"))
            daemon.event("upload_queued", timeout=30)
            daemon.wait_for(lambda line, e=answer["execution_id"]: line.get("event") == "run_finished"
                            and line.get("execution_id") == e)
        env = {"TOFU_TUI_HOME": str(home)}
        queued = json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout)
        assert [q["serial_number"] for q in queued] == ["SN1", "SN2", "SN3"]
        started = [json.loads(run_cli(["queue", "get", str(q["id"])], env=env).stdout)["payload"]["started_at"]
                   for q in queued]
        server.start()
        runs = wait_until(lambda: (r := server.runs()) and len(r) == 3 and r, timeout=60, what="3 runs")
        runs.sort(key=lambda r: r["created_at"])
        assert [r["unit"]["serial_number"] for r in runs] == ["SN1", "SN2", "SN3"]
        assert [r["started_at"].replace("+00:00", "Z")[:23] for r in runs] == [s.replace("+00:00", "Z")[:23]
                                                                               for s in started]
        wait_until(lambda: json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout) == [], what="empty queue")
    finally:
        daemon.stop()


def test_queue_uploads_run_and_attachment_once_to_the_real_server(server: RealServer, home: Path,
                                                                   tmp_path: Path) -> None:
    from tofu_tui.station.enroll import client_for
    from tofu_tui.station.queue import AttachmentFile, Drainer, UploadQueue

    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1")
    procedure_id = server.procedure("Board test", repo.url, station_id)
    paths = station_paths(home)
    config, client = client_for(paths)
    queue = UploadQueue(paths, config.installation_id)
    trace = tmp_path / "trace.csv"
    trace.write_text("t,v\n0,3.3\n")
    body = {"outcome": "PASS", "procedure_id": procedure_id, "started_at": "2026-01-01T10:00:00.000Z",
            "ended_at": "2026-01-01T10:00:05.000Z", "serial_number": "SN-Q"}
    queued = queue.enqueue(body, [AttachmentFile("trace.csv", trace)])
    # The first try created the run and uploaded the file, then died before finalizing;
    # the run's answer was lost, the attachment step was recorded.
    entry = queue.get(queued.queue_id)
    first_id = client.create_run(entry["payload"])
    ticket = client.create_attachment(first_id, "trace.csv")
    client.put_attachment(ticket.upload_url, "trace.csv", Path(entry["attachments"][0]["path"]))
    queue.conn.execute("UPDATE queue_attachments SET server_id = ?, upload_url = ?, step = 'uploaded'",
                       (ticket.id, ticket.upload_url))
    assert Drainer(queue, client, lambda e: None).drain() is None
    (summary,) = server.runs()
    assert summary["id"] == first_id and summary["client_run_ref"] == queued.client_run_ref
    (attachment,) = server.run(first_id)["attachments"]  # resumed: not attached twice
    assert attachment["id"] == ticket.id and httpx.get(attachment["download_url"]).content == b"t,v\n0,3.3\n"
    # A run for a procedure this station is not linked to is refused (403): parked, not "revoked".
    other = server.call("POST", "/v2/procedures", {"name": "Other"})["id"]
    queue.enqueue({**body, "procedure_id": other, "serial_number": "SN-X"})
    assert Drainer(queue, client, lambda e: None).drain() is None
    (parked,) = queue.entries()
    assert parked.state == "parked" and "not linked" in (parked.last_error or "")


def test_real_server_token_errors_say_to_generate_a_new_one(server: RealServer, home: Path) -> None:
    _station_id, token = server.station()
    env = {"TOFU_TUI_HOME": str(home)}
    assert run_cli(["login", "--url", server.url, "--token", token], env=env).returncode == 0
    again = run_cli(["login", "--url", server.url, "--token", token], env=env)
    assert again.returncode == 1 and "already used" in again.stderr and "dashboard" in again.stderr
    unknown = run_cli(["login", "--url", server.url, "--token", "z" * 64], env=env)
    assert unknown.returncode == 1 and "does not know" in unknown.stderr
    assert "valid" in run_cli(["whoami"], env=env).stdout  # the failed attempts kept the good key


async def test_embedded_daemon_for_the_console(server: RealServer, home: Path, tmp_path: Path) -> None:
    import asyncio

    from tofu_tui.station.daemon import StationDaemon

    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1")
    procedure_id = server.procedure("Board test", repo.url, station_id)
    server.deploy(procedure_id)
    daemon = StationDaemon(station_paths(home), handle_signals=False)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.started.wait(), 30)
    events = daemon.subscribe()
    await daemon.handle_command(PullCommand())
    await daemon.handle_command(RunCommand(procedure_id=procedure_id, serial_number="SN-EMB", part_number="PN1"))
    kinds = []
    while "upload_succeeded" not in kinds:
        event = await asyncio.wait_for(events.get(), 30)
        assert event is not None
        kinds.append(event.type)
    assert kinds.index("run_started") < kinds.index("run_finished") < kinds.index("upload_queued")
    assert daemon.status().queue.pending == 0
    daemon.request_stop("console quit")
    assert await asyncio.wait_for(task, 30) == 0
