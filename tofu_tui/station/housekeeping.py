"""Keep the station's data folder bounded: old run logs and orphaned attachment copies.

A bench runs for years. Each run leaves a JSONL log under logs/ (kept for
troubleshooting, newest first, up to `keep_run_logs`), and a process killed while
enqueueing a run can leave its attachment copies in a folder no queue entry points at
(the copy is made before the commit, so that the queue never points at a missing
file). Neither is needed by anything else: both are removed here.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

# An attachment folder this young may belong to a run another process is enqueueing
# right now (copied, not yet committed): left alone.
ORPHAN_MIN_AGE_S = 3600.0


def prune_run_logs(logs: Path, keep: int, protect: Iterable[str] = ()) -> int:
    """Remove all but the newest `keep` run logs (never those of `protect`ed runs)."""
    protected = {f"{execution_id}.jsonl" for execution_id in protect}
    try:
        files = [(entry.stat().st_mtime, entry) for entry in logs.iterdir()
                 if entry.suffix == ".jsonl" and entry.name not in protected]
    except OSError:
        return 0
    files.sort(key=lambda pair: pair[0], reverse=True)
    removed = 0
    for _mtime, entry in files[keep:]:
        try:
            entry.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def remove_orphan_attachments(attachments: Path, conn: sqlite3.Connection, *, now: float | None = None,
                              min_age_s: float = ORPHAN_MIN_AGE_S) -> int:
    """Remove attachment folders no queue entry uses (older than `min_age_s`)."""
    now = time.time() if now is None else now
    used = {Path(row[0]).parent.name for row in conn.execute("SELECT path FROM queue_attachments")}
    removed = 0
    try:
        folders = [entry for entry in attachments.iterdir() if entry.is_dir() and entry.name not in used]
    except OSError:
        return 0
    for folder in folders:
        try:
            if now - folder.stat().st_mtime < min_age_s:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed
