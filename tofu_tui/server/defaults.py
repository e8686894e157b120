"""The admin defaults saved in a data folder (`admin.toml`: URL, admin key, database):
what lets `--data DIR` alone find the server. Light on imports: every admin command
reads it."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

CLIENT_FILE = "admin.toml"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470


@dataclass
class AdminDefaults:
    url: str | None = None
    api_key: str | None = None
    db_url: str | None = None


def load_defaults(data_dir: Path) -> AdminDefaults:
    path = Path(data_dir) / CLIENT_FILE
    if not path.is_file():
        return AdminDefaults()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return AdminDefaults(url=data.get("url"), api_key=data.get("api_key"), db_url=data.get("db_url"))


def save_defaults(data_dir: Path, defaults: AdminDefaults) -> None:
    path = Path(data_dir) / CLIENT_FILE
    body = {k: v for k, v in vars(defaults).items() if v is not None}
    tmp = path.with_suffix(".tmp")
    # The file holds an admin key: readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(tomli_w.dumps(body).encode())
    os.replace(tmp, path)




# The data folder of the server this user last set up or started: the admin commands'
# last resort when neither --data nor --url/--key (nor their environment variables)
# say which server, so `server init` then `server link S P` works as cli.md writes it.
CURRENT_FILE = "server.json"


def _current_pointer() -> Path:
    home = os.environ.get("TOFU_TUI_HOME")
    if home:
        return Path(home).expanduser().absolute() / CURRENT_FILE
    import platformdirs

    return Path(platformdirs.user_config_dir("tofu-tui")) / CURRENT_FILE


def remember_current(data_dir: Path) -> None:
    """Best effort: an unwritable config folder only loses the convenience."""
    import json

    try:
        pointer = _current_pointer()
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps({"data": str(Path(data_dir).absolute())}), encoding="utf-8")
        os.replace(tmp, pointer)
    except OSError:
        pass


def current_data_dir() -> Path | None:
    """The remembered data folder, if it still holds a server's defaults."""
    import json

    try:
        data = json.loads(_current_pointer().read_text(encoding="utf-8"))
        folder = Path(data["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if (folder / CLIENT_FILE).is_file() else None
