"""Where a station keeps its config and data (a stand-in for the station's own paths
module until the two branches meet; the same rule: `TOFU_TUI_HOME` overrides
platformdirs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "tofu-tui"


@dataclass(frozen=True)
class StationPaths:
    config_dir: Path
    data_dir: Path
    # True when the folders belong to tofu-tui alone (platformdirs), so they may go whole.
    dedicated: bool


def station_paths() -> StationPaths:
    home = os.environ.get("TOFU_TUI_HOME")
    if home:
        root = Path(home).expanduser()
        return StationPaths(config_dir=root, data_dir=root, dedicated=False)
    import platformdirs

    return StationPaths(
        config_dir=platformdirs.user_config_path(APP_NAME, appauthor=False),
        data_dir=platformdirs.user_data_path(APP_NAME, appauthor=False),
        dedicated=True,
    )
