"""What `tofu-tui uninstall` removes: the service (done by the caller), the station's
config and credentials, its runtime folder and (unless kept) its data: the upload
queue, run history, deployments, mirrors and logs.

Every folder of `StationPaths` belongs to tofu-tui alone, so each goes whole. Under
`TOFU_TUI_HOME`, which a user may point anywhere, the folder itself is removed only
when nothing else is left in it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tofu_tui.station.paths import StationPaths, daemon_running, station_paths


@dataclass
class RemovalPlan:
    """Folders to delete, in order; `keep` lists what stays on purpose; `prune` the
    parents to remove only when they end up empty."""

    remove: list[Path] = field(default_factory=list)
    keep: list[Path] = field(default_factory=list)
    prune: list[Path] = field(default_factory=list)


def removal_plan(*, keep_data: bool, paths: StationPaths | None = None) -> RemovalPlan:
    paths = paths or station_paths()
    plan = RemovalPlan()
    for folder in (paths.config_dir, paths.runtime_dir):
        if folder.exists() and folder not in plan.remove and folder != paths.data_dir:
            plan.remove.append(folder)
    control_socket = paths.control_socket
    if control_socket.parent != paths.runtime_dir and control_socket.exists():
        plan.remove.append(control_socket)
    if paths.data_dir.exists():
        (plan.keep if keep_data else plan.remove).append(paths.data_dir)
    home = os.environ.get("TOFU_TUI_HOME")
    if home:
        plan.prune.append(Path(home).expanduser().absolute())
    return plan


def runs_not_uploaded(paths: StationPaths | None = None) -> int:
    """Runs still in the upload queue (0 when there is no readable queue)."""
    import sqlite3

    paths = paths or station_paths()
    if not paths.state_db.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{paths.state_db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0])
    except sqlite3.Error:
        return 0


def daemon_stopped(paths: StationPaths | None = None) -> bool:
    """True unless a daemon holds this station's lock (removing its data under it would
    lose runs)."""
    return not daemon_running(paths or station_paths())


def installed_program() -> list[Path]:
    """The folder and PATH link that install.sh/install.ps1 made for the running
    tofu-tui, if it runs from one (PREFIX/venvs/<stamp> beside PREFIX/.tofu-tui-install)."""
    venv = Path(sys.prefix).resolve()
    prefix = venv.parent.parent
    marker = prefix / ".tofu-tui-install"
    if venv.parent.name != "venvs" or not marker.is_file():
        return []
    found = [prefix]
    link = Path(marker.read_text(encoding="utf-8").strip() or "-")
    # Only a link into this prefix (install.sh) or the shim inside it (install.ps1).
    if link.is_symlink() and str(os.readlink(link)).startswith(str(prefix)):
        found.insert(0, link)
    return found


def execute(plan: RemovalPlan) -> list[Path]:
    """Delete what PLAN says; return the folders left in place because they hold more."""
    for path in plan.remove:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    left: list[Path] = []
    for folder in plan.prune:
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            left.append(folder)
    return left
