"""Live events while the stream is down: a run in progress when the dashboard goes away
reaches the dashboard's event feed complete and in order once it is back (no stuck,
half-shown run), with nothing stored twice; the outbox that holds them stays bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.station.daemonproc import Daemon, wait_until
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll, server_process  # noqa: F401 (fixture)
from tofu_tui.models.commands import RunCommand
from tofu_tui.models.events import PhaseLog, PhaseStarted, RunFinished, RunStarted
from tofu_tui.station.control import send_command
from tofu_tui.station.outbox import Outbox
from tofu_tui.station.paths import station_paths
from tofu_tui.station.stream import encode_event

# Logs once, waits for the test to take the dashboard away and say go, then logs on.
OUTAGE_PHASE = """import os, time


def check(log):
    log.info("before the outage")
    deadline = time.monotonic() + 30
    while not os.path.exists({go!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(3):
        log.info(f"offline line {{i}}")
"""


def _events(server: RealServer, station_id: str, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = server.call("GET", f"/v2/stations/{station_id}/events", limit=100, cursor=cursor)
        events += [e["event"] for e in page["data"] if e["event"].get("execution_id") == execution_id]
        if not page["meta"]["has_more"]:
            return events
        cursor = page["meta"]["next_cursor"]


@pytest.mark.slow  # a server process stopped and started again, and the stream's reconnect backoff
def test_run_in_progress_across_an_outage_reaches_the_event_feed_complete(
    server_process: RealServer, home: Path, tmp_path: Path  # noqa: F811
) -> None:
    server = server_process
    go = tmp_path / "go"
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": OUTAGE_PHASE.format(go=str(go))})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    server.deploy(procedure_id)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", status="active")
        execution_id = send_command(station_paths(home), RunCommand(procedure_id=procedure_id, serial_number="SN-OFF",
                                                                     part_number="PN1"))["execution_id"]
        wait_until(lambda: any(e.get("message") == "before the outage"
                               for e in _events(server, station_id, execution_id)), what="the live log on the server")
        server.stop()
        daemon.event("connectivity_changed", connected=False)
        go.touch()
        daemon.wait_for(lambda line: line.get("event") == "run_finished" and line.get("execution_id") == execution_id)
        server.start()
        events = wait_until(lambda: (e := _events(server, station_id, execution_id))
                            and e[-1]["type"] == "run_finished" and e, timeout=60, what="the run's end on the server")
    finally:
        daemon.stop()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # every event once, in order, no gap
    assert events[0]["type"] == "run_started"
    messages = [e["message"] for e in events if e["type"] == "phase_log"]
    assert messages[-3:] == ["offline line 0", "offline line 1", "offline line 2"]
    assert events[-1]["outcome"] == "PASS"
    (run,) = server.runs()  # the run itself, through the upload queue, once
    assert run["unit"]["serial_number"] == "SN-OFF"


def test_run_cut_by_a_daemon_crash_is_ended_on_the_feed_after_restart(server: RealServer, home: Path,
                                                                         tmp_path: Path) -> None:
    """kill -9 mid-run: the dashboard saw the run start; the next daemon ends it (ERROR,
    saying why) instead of leaving it in progress forever. Nothing is uploaded for it."""
    go = tmp_path / "go"
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1", extra={"phases.py": OUTAGE_PHASE.format(go=str(go))})
    procedure_id = server.procedure("Board test", repo.url, station_id)
    server.deploy(procedure_id)
    daemon = Daemon(home)
    try:
        daemon.event("deployment_pulled", status="active")
        execution_id = send_command(station_paths(home), RunCommand(procedure_id=procedure_id, serial_number="SN-K",
                                                                     part_number="PN1"))["execution_id"]
        wait_until(lambda: any(e.get("message") == "before the outage"
                               for e in _events(server, station_id, execution_id)), what="the live log on the server")
        daemon.proc.kill()
        daemon.wait()
        go.touch()  # lets the orphaned phase process end
        again = Daemon(home)
        try:
            assert again.event("run_interrupted")["execution_id"] == execution_id
            events = wait_until(lambda: (e := _events(server, station_id, execution_id))
                                and e[-1]["type"] == "run_finished" and e, what="the run ended on the feed")
        finally:
            again.stop()
    finally:
        go.touch()
        daemon.stop()
    assert [e["seq"] for e in events] == [*range(1, len(events) - 1), 0, 0]  # the engine's, then the closure
    assert events[-2]["level"] == "ERROR" and "not be uploaded" in events[-2]["message"]
    assert events[-1]["outcome"] == "ERROR"
    assert server.runs() == []


def _offline_run(outbox: Outbox, execution_id: str, logs: int, finish: bool) -> None:
    outbox.put(RunStarted(execution_id=execution_id, seq=1, procedure={"name": "p"}))
    outbox.put(PhaseStarted(execution_id=execution_id, seq=2, phase_key="a", phase_name="A"))
    for i in range(logs):
        outbox.put(PhaseLog(execution_id=execution_id, seq=3 + i, phase_key="a", message=f"line {i} " + "x" * 200))
    if finish:
        outbox.put(RunFinished(execution_id=execution_id, seq=3 + logs, outcome="PASS", run={}))


def _drain(outbox: Outbox) -> list[dict[str, Any]]:
    out = []
    while (item := outbox.take()) is not None:
        out.append(json.loads(item.message)["event"])
    return out


def test_outbox_stays_bounded_and_keeps_a_runs_frame() -> None:
    outbox = Outbox(encode_event, max_events=50, max_bytes=20_000)
    _offline_run(outbox, "done", logs=30, finish=True)  # finished offline: its detail goes first
    _offline_run(outbox, "live", logs=500, finish=False)  # in progress: its newest detail is kept
    assert len(outbox) <= 50 and outbox.size_bytes <= 20_000
    outbox.connection_opened()
    sent = _drain(outbox)
    done = [e["type"] for e in sent if e["execution_id"] == "done"]
    assert done == ["run_started", "phase_started", "run_finished", "phase_log"]  # frame kept, then the notice
    live = [e for e in sent if e["execution_id"] == "live"]
    assert [e["type"] for e in live[:2]] == ["run_started", "phase_started"]
    lines = [e["seq"] for e in live if e["type"] == "phase_log" and e["seq"]]
    assert lines == sorted(lines) and lines[-1] == 502  # the newest line made it
    notices = {e["execution_id"]: e["message"] for e in sent if e["type"] == "phase_log" and e["seq"] == 0}
    assert notices["done"].startswith("30 live events") and "offline" in notices["done"]
    assert int(notices["live"].split()[0]) == 500 - len(lines)  # every line let go is counted


def test_outbox_sends_again_what_a_dropped_connection_may_have_lost() -> None:
    now = [100.0]
    outbox = Outbox(encode_event, clock=lambda: now[0])
    for seq in (1, 2, 3):
        outbox.put(PhaseLog(execution_id="e", seq=seq, message=str(seq)))
    first = outbox.take()
    assert first is not None
    outbox.sent(first)
    now[0] += 60  # long confirmed by the time the connection drops
    for _ in range(2):
        item = outbox.take()
        assert item is not None
        outbox.sent(item)
    assert outbox.connection_lost(window_s=35) == 2
    assert [e["seq"] for e in _drain(outbox)] == [2, 3]
