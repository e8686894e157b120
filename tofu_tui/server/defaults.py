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


