"""Where a station keeps its config and data (DESIGN.md "Where things live").

platformdirs picks the folders; `TOFU_TUI_HOME` puts everything under one folder, for
tests and for several stations on one machine.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "tofu-tui"
# sun_path is 104 bytes on macOS, 108 on Linux: keep a margin.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class StationPaths:
    config_dir: Path
    data_dir: Path
    runtime_dir: Path

    @property
    def station_toml(self) -> Path:
        return self.config_dir / "station.toml"

    @property
    def credentials_toml(self) -> Path:
        return self.config_dir / "credentials.toml"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def attachments(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def repos(self) -> Path:
        return self.data_dir / "repos"

    @property
    def deployments(self) -> Path:
        return self.data_dir / "deployments"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def daemon_lock(self) -> Path:
        return self.data_dir / "daemon.lock"

    @property
    def drain_lock(self) -> Path:
        return self.data_dir / "drain.lock"

    @property
    def control_token(self) -> Path:
        """Windows: the loopback port and the token a client must present."""
        return self.runtime_dir / "control.json"

    @property
    def control_socket(self) -> Path:
        path = self.runtime_dir / "control.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        # Too long for a Unix socket (deep test folders): a short, stable name derived
        # from the data folder, so every client finds the same socket.
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"tofu-tui-{digest}.sock"

    def ensure(self) -> StationPaths:
        for folder in (self.config_dir, self.data_dir, self.runtime_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if sys.platform != "win32":
            os.chmod(self.runtime_dir, 0o700)
        return self


def station_paths(home: str | os.PathLike[str] | None = None) -> StationPaths:
    """The station's folders: `home` or `$TOFU_TUI_HOME` if set, else platformdirs."""
    root = home if home is not None else os.environ.get("TOFU_TUI_HOME")
    if root:
        base = Path(root).expanduser().absolute()
        return StationPaths(base / "config", base / "data", base / "run")
    dirs = PlatformDirs(APP_NAME, appauthor=False)
    data = Path(dirs.user_data_dir)
    # Not platformdirs' runtime folder: it follows $XDG_RUNTIME_DIR, which a system
    # service lacks and an SSH login has, so the daemon and the console would look for
    # the control socket in different places.
    return StationPaths(Path(dirs.user_config_dir), data, data / "run")


def daemon_running(paths: StationPaths) -> bool:
    """True while some process runs this station's engine (it holds `daemon.lock`)."""
    if not paths.data_dir.exists():
        return False
    from filelock import FileLock, Timeout

    lock = FileLock(str(paths.daemon_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        # A lock file we may not open belongs to another user's daemon: it is theirs.
        return paths.daemon_lock.exists()
    lock.release()
    return False
