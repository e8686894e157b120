"""kill -9 of an uploading station at the worst moments, against the real server: right
after the server created an attachment record (before the station recorded its id), and
right after it created the run. The retry reuses what the server made: exactly one run
and one attachment record per file, none left hidden without bytes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env
from tests.station.gitrepo import Repo
from tests.station.realserver import RealServer
from tests.station.test_real_server import enroll
from tofu_tui.station.enroll import client_for
from tofu_tui.station.paths import station_paths
from tofu_tui.station.queue import AttachmentFile, Drainer, UploadQueue

# One drain in a fresh process whose client dies by SIGKILL as soon as the server has
# answered the call named in argv[2] for the n-th time (argv[3]).
DRAIN_THEN_DIE = """
import os, signal, sys
from pathlib import Path
from tofu_tui.station.enroll import client_for
from tofu_tui.station.paths import station_paths
from tofu_tui.station.queue import Drainer, UploadQueue

paths = station_paths(Path(sys.argv[1]))
config, client = client_for(paths)
method, after = sys.argv[2], int(sys.argv[3])
real = getattr(client, method)
calls = 0

def answered_then_killed(*args, **kwargs):
    global calls
    result = real(*args, **kwargs)
    calls += 1
    if calls == after:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(client, method, answered_then_killed)
Drainer(UploadQueue(paths, config.installation_id), client, lambda event: None).drain()
"""


def _drain_and_die(home: Path, method: str, after: int = 1) -> None:
    proc = subprocess.run([sys.executable, "-c", DRAIN_THEN_DIE, str(home), method, str(after)],
                          env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _server_attachments(server: RealServer) -> list[tuple[str, str, str]]:
    """Every attachment record the server holds, hidden (pending) ones included."""
    with sqlite3.connect(server.data / "server.db") as db:
        return [tuple(row) for row in db.execute("SELECT run_id, name, status FROM attachments ORDER BY name")]


@pytest.mark.parametrize("crash_after", ["create_attachment", "create_run"])
def test_kill9_after_a_create_leaves_one_record_per_file(server: RealServer, home: Path, tmp_path: Path,
                                                         crash_after: str) -> None:
    station_id = enroll(server, home)
    repo = Repo(tmp_path / "repo")
    repo.procedure("v1")
    procedure_id = server.procedure("Board test", repo.url, station_id)
    paths = station_paths(home)
    config, client = client_for(paths)
    queue = UploadQueue(paths, config.installation_id)
    files = []
    for name, data in (("trace.csv", b"t,v\n0,3.3\n"), ("scope.png", b"\x89PNG-ish")):
        files.append(tmp_path / name)
        files[-1].write_bytes(data)
    body = {"outcome": "PASS", "procedure_id": procedure_id, "started_at": "2026-01-01T10:00:00.000Z",
            "ended_at": "2026-01-01T10:00:05.000Z", "serial_number": "SN-K9"}
    queue.enqueue(body, [AttachmentFile(f.name, f) for f in files])

    # First the first file's create, then (second process) the second file's create
    # right after the first file was recorded: both answers are lost to a kill -9.
    _drain_and_die(home, crash_after)
    if crash_after == "create_attachment":
        _drain_and_die(home, crash_after, after=2)
        assert len(_server_attachments(server)) == 2  # the server made both records; the station knew neither

    assert Drainer(queue, client, lambda event: None).drain() is None
    assert queue.entries() == []
    (summary,) = server.runs()
    run = server.run(summary["id"])
    assert sorted(a["name"] for a in run["attachments"]) == ["scope.png", "trace.csv"]
    for attachment in run["attachments"]:
        assert httpx.get(attachment["download_url"]).content == (tmp_path / attachment["name"]).read_bytes()
    assert _server_attachments(server) == [(run["id"], "scope.png", "finalized"), (run["id"], "trace.csv", "finalized")]


def test_attachment_create_with_a_reused_key_returns_the_same_record(server: RealServer) -> None:
    procedure_id = server.call("POST", "/v2/procedures", {"name": "Keyed"})["id"]
    run_id = server.call("POST", "/v2/runs", {"outcome": "PASS", "procedure_id": procedure_id, "serial_number": "K1",
                                              "started_at": "2026-01-01T10:00:00Z", "ended_at": "2026-01-01T10:00:01Z"})["id"]

    def create(name: str, key: str) -> httpx.Response:
        return server.http.post(f"/v2/runs/{run_id}/attachments", json={"name": name}, headers={"Idempotency-Key": key})

    first, again = create("a.txt", "k-1"), create("a.txt", "k-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert create("b.txt", "k-2").json()["id"] != first.json()["id"]
    misuse = create("other.txt", "k-1")
    assert misuse.status_code == 409 and "Idempotency-Key" in misuse.json()["message"]
    assert len(_server_attachments(server)) == 2
