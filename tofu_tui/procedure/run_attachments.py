"""Where a run's attachment files live once the engine has copied them, and for how long.

A phase's `attach.file` / `attach.data` is copied at attach time into one folder per
execution, `<cache>/attachments/<execution_id>/` (`<cache>` is TOFU_TUI_CACHE_DIR, else
`$TOFU_TUI_HOME/cache`, else the user cache folder). The files outlive the process: the
`attachment` events and the run payload name them, and a script reads them after the run.

The folder stays bounded: each run, as it starts, prunes other runs' folders that are
older than TOFU_TUI_ATTACHMENTS_KEEP_DAYS, beyond the newest TOFU_TUI_ATTACHMENTS_KEEP_RUNS,
or (oldest first) beyond TOFU_TUI_ATTACHMENTS_MAX_MB in total. Never pruned: a run still
in progress (the process running it holds `<execution_id>.lock` beside the folder),
nor a folder touched in the last GRACE_S (a run that just ended and whose caller is
still reading or queueing its files). An upload queue never depends on these folders:
`UploadQueue.enqueue` copies the files into the station's data folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tofu_tui.procedure.spec_cache import cache_root

KEEP_DAYS = 14.0
KEEP_RUNS = 500
MAX_MB = 2048.0
GRACE_S = 600.0  # a just-finished run's files, while its caller queues or reads them
PRUNE_EVERY_S = 60.0  # a bench starting a run a second walks the folder once a minute

_log = logging.getLogger(__name__)


def attachments_root() -> Path:
    # Absolute: the workers that write here run in the procedure's folder.
    return cache_root().absolute() / "attachments"


@dataclass(frozen=True)
class Limits:
    keep_days: float = KEEP_DAYS
    keep_runs: int = KEEP_RUNS
    max_mb: float = MAX_MB
    grace_s: float = GRACE_S

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            keep_days=_env_number("TOFU_TUI_ATTACHMENTS_KEEP_DAYS", KEEP_DAYS),
            keep_runs=int(_env_number("TOFU_TUI_ATTACHMENTS_KEEP_RUNS", KEEP_RUNS)),
            max_mb=_env_number("TOFU_TUI_ATTACHMENTS_MAX_MB", MAX_MB),
        )


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or value != value:
        # A typo must not delete anything nor stop the run: say so and keep the default.
        _log.warning("%s=%r is not a non-negative number; using the default %g.", name, raw, default)
        return default
    return value


class _FileLock:
    """An exclusive lock on a file, held through an open descriptor, never waited for.

    The OS lock primitives directly, not the filelock library used elsewhere: importing
    filelock costs a one-shot `tofu-tui run` about a tenth of its start-up, and this
    only ever needs try-lock and release."""

    def __init__(self, path: Path) -> None:
        self.lock_file = str(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class RunAttachments:
    """The attachment folder of one execution, locked while the run is in progress."""

    def __init__(self, execution_id: str, root: Path | None = None) -> None:
        self.root = root if root is not None else attachments_root()
        self.folder = self.root / _safe_id(execution_id)
        self._lock: _FileLock | None = None

    def create(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def lock(self) -> None:
        """Mark the run in progress for other processes' pruning."""
        lock = _FileLock(self.root / f"{self.folder.name}.lock")
        try:
            locked = lock.try_acquire()
        except OSError as exc:
            locked, reason = False, str(exc)
        else:
            reason = "another process holds it"
        if not locked:  # only the grace period protects it then
            _log.warning("cannot lock the attachment folder %s: %s", self.folder, reason)
            return
        self._lock = lock

    def close(self) -> None:
        """The run is over: an empty folder goes; one with files stays, freshly dated so that
        pruning leaves it alone while the caller reads or queues its files."""
        try:
            if any(self.folder.iterdir()):
                os.utime(self.folder)
            else:
                self.folder.rmdir()
        except OSError:
            pass
        if self._lock is not None:
            self._lock.release()
            # Only this run ever locks this name: once released, its lock file has no use.
            Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock = None


def _safe_id(execution_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in execution_id).strip(".")
    return safe[:100] or "run"


def prune(root: Path | None = None, limits: Limits | None = None, *, now: float | None = None) -> list[str]:
    """Remove old run folders under `root`; returns the names removed. Never raises."""
    root = root if root is not None else attachments_root()
    limits = limits if limits is not None else Limits.from_env()
    now = time.time() if now is None else now
    try:
        entries = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    folders: list[tuple[float, str]] = []
    for entry in entries:
        with contextlib.suppress(OSError):
            folders.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    folders.sort(reverse=True)  # newest first
    removed: list[str] = []

    def drop(mtime: float, name: str) -> bool:
        if now - mtime < limits.grace_s or not _remove_unlocked(root, name):
            return False
        removed.append(name)
        return True

    kept: list[tuple[float, str]] = []  # newest first; what could not be removed counts too
    for mtime, name in folders:
        too_old = now - mtime > limits.keep_days * 86400
        if not ((too_old or len(kept) >= limits.keep_runs) and drop(mtime, name)):
            kept.append((mtime, name))
    sizes = {name: _size(root / name) for _mtime, name in kept}
    total = sum(sizes.values())
    max_bytes = limits.max_mb * 1024 * 1024
    for mtime, name in reversed(kept):  # oldest first
        if total <= max_bytes:
            break
        if drop(mtime, name):
            total -= sizes[name]
    return removed


def prune_due(root: Path | None = None, every_s: float = PRUNE_EVERY_S, *, now: float | None = None) -> bool:
    """Whether this run should prune: not if some run did in the last `every_s` (a
    marker beside the folder says when); claims the turn when it answers True."""
    root = root if root is not None else attachments_root()
    marker = root.parent / ".attachments-pruned"
    now = time.time() if now is None else now
    try:
        if now - marker.stat().st_mtime < every_s:
            return False
    except OSError:
        pass  # never pruned (or unreadable): go ahead
    with contextlib.suppress(OSError):
        marker.touch()
        os.utime(marker, (now, now))
    return True


def _remove_unlocked(root: Path, name: str) -> bool:
    lock = _FileLock(root / f"{name}.lock")
    try:
        if not lock.try_acquire():
            return False  # a run in progress
    except OSError:
        return False
    try:
        shutil.rmtree(root / name, ignore_errors=True)
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)
    return not (root / name).exists()


def _size(folder: Path) -> int:
    total = 0
    try:
        for dirpath, _dirs, files in os.walk(folder):
            for file in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, file)).st_size
    except OSError:
        pass
    return total
