"""A finished run the upload queue cannot take (its database fails) is never lost: it
is kept in data/unqueued/ with its files, and queued once the queue works again, at the
next run's end or the next daemon start."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.fakeserver import FakeServer
from tofu_tui.models.run import RunCreate
from tofu_tui.station import unqueued
from tofu_tui.station.bus import EventBus
from tofu_tui.station.daemon import StationDaemon
from tofu_tui.station.paths import StationPaths, station_paths
from tofu_tui.station.queue import AttachmentFile, UploadQueue


def _run(serial: str) -> RunCreate:
    now = datetime.now(UTC)
    return RunCreate(outcome="PASS", procedure_id="p1", started_at=now, ended_at=now, serial_number=serial)


def _attachment(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "engine" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_kept_run_goes_into_the_queue_with_its_files(paths: StationPaths, tmp_path: Path) -> None:
    source = _attachment(tmp_path, "trace.csv", b"t,v\n0,1\n")
    kept = unqueued.keep(paths, _run("SN-KEPT").model_dump(mode="json"), [AttachmentFile("trace.csv", source)],
                         "exec-1")
    source.unlink()  # the engine's copy may be pruned meanwhile: the kept copy is what counts
    queue = UploadQueue(paths, "inst")
    try:
        queued, problems = unqueued.requeue(paths, queue)
        assert problems == [] and len(queued) == 1
        entry = queue.get(queued[0].queue_id)
        assert entry["payload"]["serial_number"] == "SN-KEPT"
        assert [Path(a["path"]).read_bytes() for a in entry["attachments"]] == [b"t,v\n0,1\n"]
    finally:
        queue.close()
    assert not kept.exists() and list(unqueued.folder(paths).iterdir()) == []


def test_when_the_queue_database_fails_the_run_is_kept_and_queued_later(paths: StationPaths,
                                                                          tmp_path: Path) -> None:
    log: list[tuple[str, str, dict[str, Any]]] = []
    station = StationDaemon(paths, say=lambda level, event, fields: log.append((level, event, fields)))
    broken = UploadQueue(paths, "inst")
    broken.close()  # what a failing database looks like from here: every statement raises
    station.queue = broken

    async def finish() -> None:
        station.bus = EventBus(asyncio.get_running_loop())
        source = _attachment(tmp_path, "raw.bin", b"raw")
        result = SimpleNamespace(runs=[_run("SN-DB-DOWN")], attachments=[[SimpleNamespace(name="raw.bin", path=source)]],
                                 error=None)
        flight = SimpleNamespace(execution_id="exec-2", version=SimpleNamespace(
            procedure_id="p1", deployment_id="d1", sha="0123456789abcdef"))
        station._enqueue(flight, result)  # type: ignore[arg-type]

    asyncio.run(finish())
    (level, _event, fields), = [entry for entry in log if entry[1] == "run_kept_unqueued"]
    assert level == "error" and "queued after the next run or at the next start" in fields["message"]
    assert json.loads(Path(fields["file"]).read_text())["payload"]["serial_number"] == "SN-DB-DOWN"

    station.queue = UploadQueue(paths, "inst")  # the database works again
    try:
        station._requeue_kept()
        (entry,) = station.queue.entries()
        detail = station.queue.get(entry.id)
        assert detail["payload"]["serial_number"] == "SN-DB-DOWN"
        assert [Path(a["path"]).read_bytes() for a in detail["attachments"]] == [b"raw"]
    finally:
        station.queue.close()


def test_the_daemon_queues_and_uploads_kept_runs_at_start(fake: FakeServer, home: Path) -> None:
    login = run_cli(["login", "--url", fake.url, "--token", fake.state.new_token()], env={"TOFU_TUI_HOME": str(home)})
    assert login.returncode == 0, login.stderr
    paths = station_paths(home)
    unqueued.keep(paths, _run("SN-FROM-LAST-TIME").model_dump(mode="json"), [], "exec-3")
    daemon = Daemon(home)
    try:
        daemon.event("kept_runs_queued")
        wait_until(lambda: any(r.get("serial_number") == "SN-FROM-LAST-TIME" for r in fake.state.runs.values()),
                   what="the kept run on the server")
    finally:
        daemon.stop()
    assert list(unqueued.folder(paths).iterdir()) == []
