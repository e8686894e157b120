"""The station's data folder stays bounded: old run logs and attachment copies no queue
entry uses (a process killed while enqueueing) are removed; nothing in use is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.station.daemonproc import Daemon
from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll
from tofu_tui.station.config import load_config, save_config
from tofu_tui.station.housekeeping import prune_run_logs, remove_orphan_attachments
from tofu_tui.station.paths import StationPaths, station_paths
from tofu_tui.station.queue import AttachmentFile, UploadQueue


def _logs(paths: StationPaths, count: int) -> list[str]:
    paths.logs.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        log = paths.logs / f"exec-{i:02d}.jsonl"
        log.write_text('{"type": "run_started"}\n')
        os.utime(log, (1_000_000 + i, 1_000_000 + i))  # exec-00 oldest
        names.append(log.stem)
    return names


def _orphan(paths: StationPaths, name: str, age_s: float) -> Path:
    folder = paths.attachments / name
    folder.mkdir(parents=True)
    (folder / "000_trace.txt").write_text("copied, never committed")
    then = time.time() - age_s
    os.utime(folder, (then, then))
    return folder


def test_old_run_logs_and_orphaned_copies_go_what_is_in_use_stays(paths: StationPaths, tmp_path: Path) -> None:
    names = _logs(paths, 8)
    assert prune_run_logs(paths.logs, keep=3, protect=["exec-00"]) == 4
    assert sorted(p.stem for p in paths.logs.iterdir()) == ["exec-00", *names[-3:]]  # newest 3, and the protected

    queue = UploadQueue(paths, "inst")
    source = tmp_path / "trace.txt"
    source.write_text("queued")
    queue.enqueue({"outcome": "PASS", "serial_number": "SN"}, [AttachmentFile("trace.txt", source)])
    (queued,) = [p for p in paths.attachments.iterdir()]
    os.utime(queued, (1, 1))  # old, but a queue entry uses it
    stale = _orphan(paths, "stale", age_s=7200)
    fresh = _orphan(paths, "fresh", age_s=10)  # maybe another process enqueueing right now
    assert remove_orphan_attachments(paths.attachments, queue.conn) == 1
    assert not stale.exists() and fresh.exists() and queued.exists()
    assert Path(queue.get(1)["attachments"][0]["path"]).read_text() == "queued"


def test_daemon_keeps_its_data_folder_bounded_at_start(server: RealServer, home: Path) -> None:
    enroll(server, home)
    paths = station_paths(home)
    config = load_config(paths)
    save_config(paths, config.model_copy(update={"keep_run_logs": 2}))
    names = _logs(paths, 5)
    stale = _orphan(paths, "stale", age_s=7200)
    daemon = Daemon(home)
    try:
        assert daemon.event("orphan_attachments_removed")["folders"] == 1
        daemon.event("daemon_started")
    finally:
        daemon.stop()
    assert sorted(p.stem for p in paths.logs.iterdir()) == names[-2:]
    assert not stale.exists()
