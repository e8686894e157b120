"""The offline upload queue (in state.db) and its drain.

Persist first: a finished run and copies of its attachment files are committed here
before any upload is tried, with a `client_run_ref` minted once, so a retried upload
never creates a second run on the server. An entry leaves the queue only when the
server has confirmed the run and every attachment.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tofu_tui.models.events import (
    Event,
    UploadBackoff,
    UploadParked,
    UploadQueued,
    UploadSucceeded,
    format_ts,
)
from tofu_tui.models.status import QueueCounts, QueueEntry
from tofu_tui.station import state_db
from tofu_tui.station.api_client import (
    ApiClient,
    ApiError,
    Rejected,
    Retryable,
    Unauthorized,
    Unreachable,
)
from tofu_tui.station.paths import StationPaths

# Seconds to wait after the 1st, 2nd, 3rd, 4th failed try; hourly after that.
BACKOFF_SCHEDULE: tuple[float, ...] = (15.0, 30.0, 300.0, 900.0)
BACKOFF_CEILING = 3600.0

Clock = Callable[[], float]


def backoff_delay(failures: int) -> float:
    """Delay before the next try after `failures` consecutive retryable failures."""
    if failures <= 0:
        return 0.0
    return BACKOFF_SCHEDULE[failures - 1] if failures <= len(BACKOFF_SCHEDULE) else BACKOFF_CEILING


class QueueError(Exception):
    """A queue command could not be done; the message says why."""


@dataclass(frozen=True)
class AttachmentFile:
    name: str
    path: Path


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "attachment"


class UploadQueue:
    """The queue's storage. Safe to use from several processes at once (SQLite WAL)."""

    def __init__(self, paths: StationPaths, installation_id: str, *, clock: Clock = time.time,
                 conn: sqlite3.Connection | None = None) -> None:
        self.paths = paths
        self.installation_id = installation_id or "local"
        self.clock = clock
        self.conn = conn if conn is not None else state_db.connect(paths.state_db)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- writing ------------------------------------------------------------------------
    def _mint(self, conn: sqlite3.Connection) -> str:
        """`<installation id>_<counter>`, inside the caller's transaction: the counter
        and the run that uses it are committed together, never one without the other."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'run_counter'").fetchone()
        counter = int(row["value"]) + 1 if row else 1
        conn.execute("INSERT INTO meta(key, value) VALUES ('run_counter', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(counter),))
        return f"{self.installation_id}_{counter}"

    def enqueue(self, payload: dict[str, Any], attachments: Iterable[AttachmentFile] = (),
                *, execution_id: str = "") -> UploadQueued:
        """Commit a finished run (and copies of its files); returns the event to publish."""
        # Files first, into a folder of their own: a crash before the commit leaves only
        # an orphan folder, never a queue entry pointing at missing files.
        folder = self.paths.attachments / uuid.uuid4().hex
        copies: list[tuple[str, str]] = []
        for index, attachment in enumerate(attachments):
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{index:03d}_{_safe_name(attachment.name)}"
            shutil.copyfile(attachment.path, target)
            copies.append((attachment.name, str(target)))
        now = self.clock()
        with self._txn() as conn:
            ref = payload.get("client_run_ref") or self._mint(conn)
            payload = {**payload, "client_run_ref": ref}
            cursor = conn.execute(
                "INSERT INTO queue(client_run_ref, payload, procedure_id, serial_number, outcome, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ref, json.dumps(payload, default=str), payload.get("procedure_id"), payload.get("serial_number"),
                 payload.get("outcome"), now))
            queue_id = int(cursor.lastrowid or 0)
            conn.executemany("INSERT INTO queue_attachments(queue_id, name, path) VALUES (?, ?, ?)",
                             [(queue_id, name, path) for name, path in copies])
            conn.execute(
                "INSERT OR IGNORE INTO run_history(execution_id, client_run_ref, procedure_id, deployment_id, "
                "outcome, finished_at) VALUES (?, ?, ?, ?, ?, ?)",
                (execution_id or payload.get("execution_id") or "", ref, payload.get("procedure_id"),
                 payload.get("deployment_id"), payload.get("outcome"), now))
        return UploadQueued(queue_id=queue_id, client_run_ref=ref)

    def delete(self, queue_ids: list[int]) -> int:
        """Drop entries and their attachment copies."""
        if not queue_ids:
            return 0
        marks = ",".join("?" * len(queue_ids))
        with self._txn() as conn:
            folders = {Path(row["path"]).parent for row in conn.execute(
                f"SELECT path FROM queue_attachments WHERE queue_id IN ({marks})", queue_ids)}
            count = conn.execute(f"DELETE FROM queue WHERE id IN ({marks})", queue_ids).rowcount
        for folder in folders:
            if folder.parent == self.paths.attachments:
                shutil.rmtree(folder, ignore_errors=True)
        return count

    def retry(self, queue_id: int | None = None) -> int:
        """Make parked or backing-off entries due now; returns how many."""
        with self._txn() as conn:
            if queue_id is None:
                cursor = conn.execute("UPDATE queue SET state = 'pending', next_attempt_at = 0, attempts = 0 "
                                      "WHERE state IN ('parked', 'backoff')")
            else:
                self._require(queue_id)
                cursor = conn.execute("UPDATE queue SET state = 'pending', next_attempt_at = 0, attempts = 0 "
                                      "WHERE id = ?", (queue_id,))
        return cursor.rowcount

    def wake(self) -> None:
        """Connectivity returned: entries backing off become due at once."""
        self.conn.execute("UPDATE queue SET next_attempt_at = 0 WHERE state = 'backoff'")

    def remove(self, queue_id: int | None = None) -> int:
        """Drop one entry (or all with None): its run will never be uploaded."""
        if queue_id is not None:
            self._require(queue_id)
            return self.delete([queue_id])
        return self.delete([int(row["id"]) for row in self.conn.execute("SELECT id FROM queue")])

    # --- reading ------------------------------------------------------------------------
    def _require(self, queue_id: int) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM queue WHERE id = ?", (queue_id,)).fetchone()
        if row is None:
            raise QueueError(f"There is no queue entry {queue_id}. `tofu-tui queue ls` lists them.")
        return row

    @staticmethod
    def _entry(row: sqlite3.Row) -> QueueEntry:
        return QueueEntry(id=row["id"], client_run_ref=row["client_run_ref"], procedure_id=row["procedure_id"],
                          serial_number=row["serial_number"], outcome=row["outcome"], state=row["state"],
                          attempts=row["attempts"], next_attempt_at=_ts(row["next_attempt_at"]),
                          last_error=row["last_error"], created_at=_ts(row["created_at"]))

    def entries(self, limit: int | None = None) -> list[QueueEntry]:
        sql = "SELECT * FROM queue ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [self._entry(row) for row in self.conn.execute(sql)]

    def get(self, queue_id: int) -> dict[str, Any]:
        """Everything about one entry: its state, the run body and the attachment files."""
        row = self._require(queue_id)
        entry = self._entry(row).model_dump(mode="json")
        entry["run_id"] = row["run_id"]
        entry["payload"] = json.loads(row["payload"])
        entry["attachments"] = [
            {"name": a["name"], "path": a["path"], "uploaded": bool(a["done"])}
            for a in self.conn.execute("SELECT * FROM queue_attachments WHERE queue_id = ? ORDER BY id", (queue_id,))
        ]
        return entry

    def counts(self) -> QueueCounts:
        counts = QueueCounts()
        for row in self.conn.execute("SELECT state, COUNT(*) AS n FROM queue GROUP BY state"):
            if row["state"] == "parked":
                counts.parked += row["n"]
            elif row["state"] == "backoff":
                counts.backoff += row["n"]
            else:
                counts.pending += row["n"]
        return counts

    def runs_today(self, procedure_id: str) -> int:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        row = self.conn.execute("SELECT COUNT(*) FROM run_history WHERE procedure_id = ? AND finished_at >= ?",
                                (procedure_id, start)).fetchone()
        return int(row[0])

    def head(self) -> sqlite3.Row | None:
        """The oldest entry not parked: uploads go strictly in the order runs finished."""
        return self.conn.execute("SELECT * FROM queue WHERE state != 'parked' ORDER BY id LIMIT 1").fetchone()


class Drainer:
    """Uploads queue entries in order. Only the holder of the drain lock uploads, so two
    processes (a daemon and a stray second one) never send the same entry."""

    def __init__(self, queue: UploadQueue, client: ApiClient, emit: Callable[[Event], None],
                 *, clock: Clock | None = None) -> None:
        self.queue = queue
        self.client = client
        self.emit = emit
        self.clock = clock or queue.clock
        # What the drainer writes (progress, deletions) may be lost to a power cut without
        # harm: a re-sent run or file is recognised by its client_run_ref / recorded step.
        # So its connection skips the per-commit fsync; give it its own UploadQueue, as
        # enqueueing (which must survive a power cut) keeps synchronous=FULL.
        queue.conn.execute("PRAGMA synchronous = NORMAL")
        # Not thread-local: the daemon drains from whichever worker thread is free.
        self._lock = FileLock(str(queue.paths.drain_lock), timeout=0, thread_local=False)

    def drain(self, max_entries: int | None = None) -> float | None:
        """Upload what is due. Returns the seconds until the head is due again, 0 if it
        gave way to another drainer or hit `max_entries`, None when the queue is empty.
        Raises Unauthorized (the key was revoked) and leaves the entry queued."""
        try:
            self._lock.acquire()
        except Timeout:
            return 0.0
        try:
            done = 0
            while max_entries is None or done < max_entries:
                row = self.queue.head()
                if row is None:
                    return None
                wait = row["next_attempt_at"] - self.clock()
                if wait > 0:
                    return float(wait)
                if not self._upload(row):
                    head = self.queue.head()
                    return max(0.0, head["next_attempt_at"] - self.clock()) if head else None
                done += 1
            return 0.0
        finally:
            self._lock.release()

    def _upload(self, row: sqlite3.Row) -> bool:
        """One entry. True when it left the head (uploaded or parked), False on backoff."""
        queue_id, ref = int(row["id"]), str(row["client_run_ref"])
        conn = self.queue.conn
        try:
            attachments = conn.execute("SELECT * FROM queue_attachments WHERE queue_id = ? AND done = 0 "
                                       "ORDER BY id", (queue_id,)).fetchall()
            run_id = row["run_id"]
            if not run_id:
                run_id = self.client.create_run(json.loads(row["payload"]))
                if attachments:  # without files the entry is deleted next: one write fewer
                    conn.execute("UPDATE queue SET run_id = ?, state = 'uploading' WHERE id = ?", (run_id, queue_id))
            for attachment in attachments:
                self._upload_attachment(run_id, ref, attachment)
        except Unauthorized:
            raise
        except (Retryable, Unreachable) as exc:
            failures = int(row["attempts"]) + 1
            next_at = self.clock() + backoff_delay(failures)
            conn.execute("UPDATE queue SET state = 'backoff', attempts = ?, next_attempt_at = ?, last_error = ? "
                         "WHERE id = ?", (failures, next_at, exc.message, queue_id))
            self.emit(UploadBackoff(queue_id=queue_id, client_run_ref=ref, error=exc.message,
                                    next_attempt_at=format_ts(datetime.fromtimestamp(next_at, UTC))))
            return False
        except (Rejected, ApiError) as exc:
            conn.execute("UPDATE queue SET state = 'parked', attempts = attempts + 1, last_error = ? WHERE id = ?",
                         (exc.message, queue_id))
            self.emit(UploadParked(queue_id=queue_id, client_run_ref=ref, error=exc.message))
            return True
        self.queue.delete([queue_id])
        self.emit(UploadSucceeded(queue_id=queue_id, client_run_ref=ref, run_id=str(run_id)))
        return True

    def _upload_attachment(self, run_id: str, ref: str, row: sqlite3.Row) -> None:
        """Create, PUT, finalize; each step recorded, so a retry resumes where it stopped
        instead of attaching the file twice. The create carries a key fixed by the entry
        (its client_run_ref and the file's row), so a crash between the server's answer and
        recording it makes the retry get the same attachment back, not a second one."""
        conn = self.queue.conn
        name, path = str(row["name"]), Path(row["path"])
        if not path.exists():
            raise Rejected(f"attachment {name!r}: its queued copy {path} is missing")
        server_id, url, step = row["server_id"], row["upload_url"], row["step"]
        if step == "new" or not server_id:
            ticket = self.client.create_attachment(run_id, name, idempotency_key=f"{ref}/attachment/{row['id']}")
            server_id, url, step = ticket.id, ticket.upload_url, "created"
            conn.execute("UPDATE queue_attachments SET server_id = ?, upload_url = ?, step = ? WHERE id = ?",
                         (server_id, url, step, row["id"]))
        if step == "created":
            try:
                self.client.put_attachment(url, name, path)
            except Rejected as exc:
                if exc.status != 409:  # 409: finalized by an earlier try whose answer was lost
                    # The URL may have expired: start this file over on the next try.
                    conn.execute("UPDATE queue_attachments SET step = 'new' WHERE id = ?", (row["id"],))
                    raise
            conn.execute("UPDATE queue_attachments SET step = 'uploaded' WHERE id = ?", (row["id"],))
        self.client.finalize_attachment(server_id, name)
        conn.execute("UPDATE queue_attachments SET done = 1, step = 'done' WHERE id = ?", (row["id"],))
