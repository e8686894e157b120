"""What `tofu-tui uninstall` removes: the service, the station's config and (unless
kept) its data: the upload queue, run history, deployments, mirrors and logs.

Folders that belong to tofu-tui alone (the platformdirs ones) go whole. Under
`TOFU_TUI_HOME`, which a user may point anywhere, only the entries the station makes
are removed, and the folder itself only when nothing else is left in it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tofu_tui.station.install_paths import StationPaths, station_paths

CONFIG_ENTRIES = ("station.toml", "credentials.toml")
DATA_ENTRIES = (
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "attachments",
    "repos",
    "deployments",
    "logs",
    "envs",
    "daemon.lock",
    "daemon.pid",
    "control.sock",
    "control.json",
)


@dataclass
class RemovalPlan:
    """Paths to delete, in order; `keep` lists what stays on purpose."""

    remove: list[Path] = field(default_factory=list)
    prune: list[Path] = field(default_factory=list)
    keep: list[Path] = field(default_factory=list)


def removal_plan(*, keep_data: bool, paths: StationPaths | None = None) -> RemovalPlan:
    paths = paths or station_paths()
    plan = RemovalPlan()
    shared = paths.config_dir == paths.data_dir

    def entries(folder: Path, names: tuple[str, ...]) -> list[Path]:
        return [folder / n for n in names if (folder / n).exists() or (folder / n).is_symlink()]

    if paths.dedicated and not shared:
        if paths.config_dir.exists():
            plan.remove.append(paths.config_dir)
    else:
        plan.remove += entries(paths.config_dir, CONFIG_ENTRIES)
        plan.prune.append(paths.config_dir)
    if keep_data:
        if paths.data_dir.exists():
            plan.keep.append(paths.data_dir)
    elif paths.dedicated and not shared:
        if paths.data_dir.exists():
            plan.remove.append(paths.data_dir)
    else:
        plan.remove += entries(paths.data_dir, DATA_ENTRIES)
        if paths.data_dir not in plan.prune:
            plan.prune.append(paths.data_dir)
    return plan


def execute(plan: RemovalPlan) -> list[Path]:
    """Delete what PLAN says; return the folders left behind because they hold more."""
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
            if any(True for _ in os.scandir(folder)):
                left.append(folder)
    return left
