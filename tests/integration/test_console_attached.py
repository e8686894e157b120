"""The operator console attached to a real station daemon (`tofu-tui --headless`)
enrolled on the real local server: it shows the station and its deployed procedure,
runs a unit through the identify form, answers the run's prompt, and detaching leaves
the daemon running with the run on the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.station import Station, enrolled_station, prompt_shown, until
from tests.station.daemonproc import Daemon, wait_until
from tests.station.realserver import RealServer
from tests.tui.conftest import screen_text, toasts
from tofu_tui.models.commands import RunCommand, UiResponseCommand
from tofu_tui.station.control import send_command
from tofu_tui.tui import daemon_backend
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.backend import BackendUnavailable
from tofu_tui.tui.forms import PromptForm

WIDE = (160, 48)


@pytest.fixture
def station(server: RealServer, tmp_path: Path) -> Station:
    return enrolled_station(server, tmp_path)


@pytest.fixture
def daemon(station: Station) -> Iterator[Daemon]:
    proc = Daemon(station.home)
    try:
        proc.event("deployment_pulled", deployment_id=station.deployment_id, status="active")
        yield proc
    finally:
        proc.stop()


@pytest.mark.timeout(60)
async def test_attach_run_answer_prompt_and_detach(station: Station, daemon: Daemon) -> None:
    backend = await daemon_backend.connect(station.paths)
    assert backend is not None and backend.mode == "attached"
    app = StationConsole(backend, status_interval=0.5)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await until(pilot, lambda: "Board test" in screen_text(app), "the linked procedure")
        text = screen_text(app)
        assert "● ONLINE  Bench 7" in text and "attached" in text
        assert "Board test: power and visual check" in text  # the active deployment's commit

        await pilot.press("r")
        assert isinstance(app.screen, PromptForm)
        await pilot.press(*"S42", "tab", *"P7", "enter")
        # The run's prompt opens on its own once the first phase has passed.
        form = await prompt_shown(pilot)

        # The daemon's refusal comes back as its reason, naming the field.
        reason = await backend.send(UiResponseCommand(request_id=form.request_id, values={"note": ""}))
        assert reason is not None and "note" in reason

        await pilot.press(*"ok", "enter")
        await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run to pass")
        text = screen_text(app)
        assert "S42" in text and "Visual check" in text
        # A second run while none is in flight is accepted; a bogus procedure is refused with the reason.
        refusal = await backend.send(RunCommand(procedure_id="no-such-procedure", serial_number="S"))
        assert refusal is not None and "no-such-procedure" in refusal

        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 or app.return_code is None

    # Detaching left the daemon running and reachable.
    assert daemon.proc.poll() is None
    status = json.loads(run_cli(["status", "--json"], env=station.env).stdout)
    assert status["daemon_running"] is True
    assert status["procedures"][0]["runs_today"] == 1
    (summary,) = wait_until(lambda: station.server.runs(), timeout=20, what="the run on the server")
    run = station.server.run(summary["id"])
    assert run["outcome"] == "PASS"
    assert run["unit"]["serial_number"] == "S42"
    assert run["deployment_id"] == station.deployment_id
    measured = {m["name"]: m["measured_value"] for p in run["phases"] for m in p.get("measurements", [])}
    assert measured["note"] == "ok"
    assert measured["voltage"] == 3.3


@pytest.mark.timeout(30)
async def test_no_daemon_means_none_and_a_stale_socket_is_ignored(station: Station) -> None:
    assert await daemon_backend.connect(station.paths) is None
    # A socket file left by a daemon that was killed: nobody holds the daemon lock.
    station.paths.ensure()
    station.paths.control_socket.touch()
    assert await daemon_backend.connect(station.paths) is None


@pytest.mark.timeout(30)
async def test_daemon_holding_the_lock_without_a_socket_says_what_to_do(station: Station,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    monkeypatch.setattr(daemon_backend, "STARTING_GRACE_S", 0.3)
    station.paths.ensure()
    lock = FileLock(str(station.paths.daemon_lock))
    # Stands in for a daemon holding the lock (flock is per open file, so the attempt
    # in connect() conflicts with it even from this process).
    with lock, pytest.raises(BackendUnavailable, match="service stop"):
        await daemon_backend.connect(station.paths)


@pytest.mark.timeout(60)
async def test_attach_mid_run_shows_the_run_and_its_waiting_prompt(station: Station, daemon: Daemon) -> None:
    # A run started elsewhere (the CLI here; the dashboard alike) waits on its prompt.
    answer = await asyncio.to_thread(send_command, station.paths, RunCommand(
        procedure_id=station.procedure_id, serial_number="S77", part_number="P7"))
    await asyncio.to_thread(daemon.event, "ui_request", 20, execution_id=answer["execution_id"])
    backend = await daemon_backend.connect(station.paths)
    assert backend is not None
    app = StationConsole(backend, status_interval=3600)
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await prompt_shown(pilot)
        # The replayed run and its prompt arrive together; the header may draw a frame later.
        await until(pilot, lambda: "S77" in screen_text(app), "the unit of the run in flight")
        await pilot.press("o", "k", "enter")
        await until(pilot, lambda: "Run finished: PASS" in toasts(app), "the run to pass")
        await pilot.press("q")
        await pilot.pause()
    assert daemon.proc.poll() is None
    (summary,) = await asyncio.to_thread(wait_until, station.server.runs, 20, "the run on the server")
    assert station.server.run(summary["id"])["unit"]["serial_number"] == "S77"
