"""The upload queue against a real HTTP server: order, idempotency, backoff, parking."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.station.fakeserver import FakeServer
from tofu_tui.models.events import Event
from tofu_tui.station.api_client import ApiClient, Unauthorized
from tofu_tui.station.paths import StationPaths, station_paths
from tofu_tui.station.queue import AttachmentFile, Drainer, UploadQueue, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def run_body(serial: str, started: str = "2026-01-01T10:00:00.000Z") -> dict[str, Any]:
    return {"outcome": "PASS", "procedure_id": "proc_1", "started_at": started,
            "ended_at": "2026-01-01T10:00:05.000Z", "serial_number": serial}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(paths: StationPaths, clock: Clock) -> UploadQueue:
    return UploadQueue(paths, "inst1", clock=clock)


def drainer(queue: UploadQueue, fake: FakeServer, events: list[Event]) -> Drainer:
    return Drainer(queue, ApiClient(fake.url, fake.enroll_key()), events.append)


def test_refs_are_minted_once_and_persist(paths: StationPaths, queue: UploadQueue) -> None:
    first = queue.enqueue(run_body("SN1"))
    second = queue.enqueue(run_body("SN2"))
    assert (first.client_run_ref, second.client_run_ref) == ("inst1_1", "inst1_2")
    queue.remove(None)
    reopened = UploadQueue(paths, "inst1")
    assert reopened.enqueue(run_body("SN3")).client_run_ref == "inst1_3"  # never reused after a drop


def test_drain_in_order_with_attachments_then_empty(queue: UploadQueue, fake: FakeServer, tmp_path: Path) -> None:
    source = tmp_path / "scope.csv"
    source.write_text("1,2,3\n")
    queue.enqueue(run_body("SN1"), [AttachmentFile("scope.csv", source)])
    source.unlink()  # the queue holds its own copy
    queue.enqueue(run_body("SN2"))
    events: list[Event] = []
    assert drainer(queue, fake, events).drain() is None
    serials = [fake.state.runs[r]["serial_number"] for r in fake.state.run_order]
    assert serials == ["SN1", "SN2"]
    (attachment,) = fake.state.attachments.values()
    assert attachment["data"] == b"1,2,3\n" and attachment["final"]
    assert attachment["run_id"] == fake.state.run_order[0]
    assert [e.type for e in events] == ["upload_succeeded", "upload_succeeded"]
    assert queue.entries() == [] and not any(queue.paths.attachments.iterdir())


def test_retried_upload_never_creates_a_second_run(queue: UploadQueue, fake: FakeServer) -> None:
    queued = queue.enqueue(run_body("SN1"))
    client = ApiClient(fake.url, fake.enroll_key())
    # The server created the run but the answer was lost: the next try sends the same ref.
    client.create_run(json.loads(queue.conn.execute("SELECT payload FROM queue").fetchone()[0]))
    Drainer(queue, client, lambda e: None).drain()
    assert len(fake.state.runs) == 1 and queued.client_run_ref in fake.state.refs


def test_500_429_then_422_backoff_backoff_parked(queue: UploadQueue, fake: FakeServer, clock: Clock) -> None:
    fake.state.run_faults = [(500, {"message": "boom", "code": "internal"}),
                             (429, {"message": "slow down", "code": "rate_limited"}),
                             (422, {"message": "serial_number is too long", "code": "invalid"})]
    queue.enqueue(run_body("SN1"))
    queue.enqueue(run_body("SN2"))
    events: list[Event] = []
    d = drainer(queue, fake, events)
    assert d.drain() == 15.0
    assert d.drain() == 15.0  # not due yet: nothing sent
    clock.now += 15
    assert d.drain() == 30.0
    clock.now += 30
    assert d.drain() is None  # 422 parks SN1; SN2 goes through
    assert [e.type for e in events] == ["upload_backoff", "upload_backoff", "upload_parked", "upload_succeeded"]
    (parked,) = queue.entries()
    assert parked.state == "parked" and "serial_number is too long" in (parked.last_error or "")
    assert d.drain() is None  # parked stays parked
    assert queue.retry(parked.id) == 1
    assert d.drain() is None and queue.entries() == []
    assert sorted(r["serial_number"] for r in fake.state.runs.values()) == ["SN1", "SN2"]


def test_backoff_schedule_then_hourly() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [15, 30, 300, 900, 3600, 3600, 3600]


def test_unreachable_server_backs_off_and_wake_makes_due(queue: UploadQueue, clock: Clock) -> None:
    from tests.station.fakeserver import free_port

    queue.enqueue(run_body("SN1"))
    events: list[Event] = []
    d = Drainer(queue, ApiClient(f"http://127.0.0.1:{free_port()}", "k"), events.append)
    assert d.drain() == 15.0
    assert events[0].type == "upload_backoff" and "cannot reach" in events[0].error  # type: ignore[union-attr]
    queue.wake()
    (entry,) = queue.entries()
    assert entry.state == "backoff" and entry.attempts == 1 and entry.next_attempt_at is None


def test_revoked_key_stops_drain_and_keeps_entry(queue: UploadQueue, fake: FakeServer) -> None:
    queue.enqueue(run_body("SN1"))
    with pytest.raises(Unauthorized):
        Drainer(queue, ApiClient(fake.url, "revoked"), lambda e: None).drain()
    assert len(queue.entries()) == 1 and queue.entries()[0].attempts == 0


def _drain_in_child(home: str, url: str, key: str) -> None:
    q = UploadQueue(station_paths(home), "inst1")
    Drainer(q, ApiClient(url, key), lambda e: None).drain()


def test_two_drainers_never_send_the_same_entry(paths: StationPaths, fake: FakeServer) -> None:
    q = UploadQueue(paths, "inst1")
    for i in range(40):
        q.enqueue(run_body(f"SN{i}"))
    key = fake.enroll_key()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_drain_in_child, args=(str(paths.data_dir.parent), fake.url, key))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    Drainer(q, ApiClient(fake.url, key), lambda e: None).drain()  # whatever a child gave way on
    serials = [fake.state.runs[r]["serial_number"] for r in fake.state.run_order]
    assert serials == [f"SN{i}" for i in range(40)]
    assert q.entries() == []


def test_queue_cli(paths: StationPaths, queue: UploadQueue, tmp_path: Path) -> None:
    env = {"TOFU_TUI_HOME": str(paths.data_dir.parent)}
    assert "empty" in run_cli(["queue"], env=env).stdout
    queue.enqueue(run_body("SN-CLI-1"))
    queue.enqueue(run_body("SN-CLI-2"))
    listed = json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout)
    assert [e["serial_number"] for e in listed] == ["SN-CLI-1", "SN-CLI-2"]
    assert "SN-CLI-1" in run_cli(["queue", "ls"], env=env).stdout
    got = json.loads(run_cli(["queue", "get", str(listed[0]["id"])], env=env).stdout)
    assert got["payload"]["client_run_ref"] == "inst1_1"
    out = tmp_path / "run.json"
    assert run_cli(["queue", "export", str(listed[0]["id"]), "--out", str(out)], env=env).returncode == 0
    assert json.loads(out.read_text())["serial_number"] == "SN-CLI-1"
    missing = run_cli(["queue", "get", "999"], env=env)
    assert missing.returncode == 1 and "queue ls" in missing.stderr
    assert run_cli(["queue", "rm"], env=env).returncode == 2
    assert run_cli(["queue", "retry"], env=env).returncode == 0
    assert run_cli(["queue", "rm", str(listed[0]["id"])], env=env).returncode == 0
    assert run_cli(["queue", "rm", "--all"], env=env).returncode == 0
    assert queue.entries() == []


def test_corrupt_state_db_is_reported(paths: StationPaths) -> None:
    paths.state_db.write_bytes(b"this is not a database" * 100)
    result = run_cli(["queue", "ls"], env={"TOFU_TUI_HOME": str(paths.data_dir.parent)})
    assert result.returncode == 1 and "damaged" in result.stderr and "move the file" in result.stderr


def test_a_version_1_database_is_migrated_in_place(paths: StationPaths) -> None:
    import sqlite3

    from tofu_tui.station import state_db

    old = sqlite3.connect(paths.state_db)
    old.executescript(state_db.MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    old.execute("INSERT INTO queue(client_run_ref, payload, created_at) VALUES ('i_1', '{}', 0)")
    old.execute("INSERT INTO queue_attachments(queue_id, name, path) VALUES (1, 'a.txt', '/x')")
    old.commit()
    old.close()
    conn = state_db.connect(paths.state_db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(state_db.MIGRATIONS)
    assert conn.execute("SELECT step FROM queue_attachments").fetchone()[0] == "new"
    assert UploadQueue(paths, "i", conn=conn).entries()[0].client_run_ref == "i_1"  # the queued run survived
