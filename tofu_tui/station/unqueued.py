"""Finished runs the upload queue could not take (its database failed: disk full, a
corrupt or locked file): never lost. Each is kept as a JSON file in `data/unqueued/`,
with copies of its attachments beside it, and goes into the queue at the next daemon
start or after the next run, whichever comes first.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tofu_tui.models.events import UploadQueued
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.queue import AttachmentFile, UploadQueue


def folder(paths: StationPaths) -> Path:
    return paths.data_dir / "unqueued"


def keep(paths: StationPaths, payload: dict[str, Any], attachments: Iterable[AttachmentFile],
         execution_id: str) -> Path:
    """Write the run where `requeue` finds it; raises only if not even that is possible.
    An attachment that cannot be copied is referenced where it is (it may still be there
    when the run is queued)."""
    base = folder(paths)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{execution_id or 'run'}-{uuid.uuid4().hex[:8]}"
    files = []
    for index, attachment in enumerate(attachments):
        target = base / stem / f"{index:03d}_{Path(attachment.path).name}"
        try:
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(attachment.path, target)
            files.append({"name": attachment.name, "path": str(target)})
        except OSError:
            files.append({"name": attachment.name, "path": str(attachment.path)})
    entry = base / f"{stem}.json"
    tmp = entry.with_suffix(".tmp")
    tmp.write_text(json.dumps({"payload": payload, "execution_id": execution_id, "attachments": files},
                              default=str), encoding="utf-8")
    os.replace(tmp, entry)  # whole or absent: a crash here leaves no half entry
    return entry


def requeue(paths: StationPaths, queue: UploadQueue) -> tuple[list[UploadQueued], list[str]]:
    """Put every kept run into the queue, oldest first. Returns the queued events and one
    message per problem (an entry that still cannot be queued stays for the next try)."""
    base = folder(paths)
    try:
        entries = sorted(base.glob("*.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return [], []
    queued: list[UploadQueued] = []
    problems: list[str] = []
    for entry in entries:
        try:
            kept = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # unreadable: set aside once, not retried forever
            problems.append(f"{entry.name}: unreadable ({exc}); set aside as {entry.stem}.corrupt")
            entry.rename(entry.with_suffix(".corrupt"))
            continue
        try:
            files = [AttachmentFile(a["name"], Path(a["path"])) for a in kept.get("attachments", [])]
            present = [a for a in files if a.path.is_file()]
            for missing in (a for a in files if not a.path.is_file()):
                problems.append(f"{entry.name}: attachment {missing.name!r} is gone ({missing.path}); "
                                "the run is queued without it")
            queued.append(queue.enqueue(kept["payload"], present, execution_id=kept.get("execution_id", "")))
        except Exception as exc:  # still failing: it stays, and says why
            problems.append(f"{entry.name}: not queued yet ({type(exc).__name__}: {exc})")
            continue
        entry.unlink(missing_ok=True)
        shutil.rmtree(base / entry.stem, ignore_errors=True)  # the queue made its own copies
    return queued, problems
