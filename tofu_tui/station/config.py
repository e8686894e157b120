"""`station.toml` (settings, user-editable) and `credentials.toml` (the station key,
mode 0600). The key is a `SecretStr`: it never shows in a repr, a log or an error,
and the daemon never puts it in a procedure's environment."""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from tofu_tui.station.paths import StationPaths


class ConfigError(Exception):
    """A config file is missing or unreadable; the message says what to do."""


class GitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ssh remotes: a private key file (its .pub beside it, or derived by libgit2).
    ssh_key: str | None = None
    ssh_user: str = "git"
    # https remotes: the user name sent with the token from credentials.toml.
    https_user: str = "x-access-token"


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    server_url: str
    station_id: str
    station_name: str = ""
    organization_slug: str | None = None
    installation_id: str = ""
    ca_cert: str | None = None
    poll_interval_s: float = Field(30.0, gt=0)
    drain_interval_s: float = Field(5.0, gt=0)
    heartbeat_interval_s: float = Field(30.0, gt=0)
    keep_versions: int = Field(3, ge=1, description="deployments kept per procedure")
    keep_run_logs: int = Field(1000, ge=1, description="run logs (data/logs/*.jsonl) kept, newest first")
    git: GitSettings = Field(default_factory=GitSettings)

    @property
    def api_url(self) -> str:
        return self.server_url.rstrip("/") + "/api"


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    api_key: SecretStr
    git_token: SecretStr | None = None
    ssh_passphrase: SecretStr | None = None


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if sys.platform != "win32":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            "This station is not enrolled. Run `tofu-tui login --token TOKEN` with a setup token from the dashboard."
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}). Fix or delete it, then log in again.") from None


def load_config(paths: StationPaths) -> StationConfig:
    try:
        return StationConfig.model_validate(_read_toml(paths.station_toml))
    except ValidationError as exc:
        raise ConfigError(f"{paths.station_toml} is invalid: {exc.errors()[0]['msg']}. Fix it or log in again.") from None


def load_credentials(paths: StationPaths) -> Credentials:
    try:
        return Credentials.model_validate(_read_toml(paths.credentials_toml))
    except ValidationError:
        # Never echo the file's content: it holds the key.
        raise ConfigError(f"{paths.credentials_toml} is invalid. Log in again with a new setup token.") from None


def save_config(paths: StationPaths, config: StationConfig) -> None:
    data = config.model_dump(mode="json", exclude_none=True)
    atomic_write(paths.station_toml, tomli_w.dumps(data).encode())


def save_credentials(paths: StationPaths, credentials: Credentials) -> None:
    data: dict[str, str] = {"api_key": credentials.api_key.get_secret_value()}
    if credentials.git_token is not None:
        data["git_token"] = credentials.git_token.get_secret_value()
    if credentials.ssh_passphrase is not None:
        data["ssh_passphrase"] = credentials.ssh_passphrase.get_secret_value()
    atomic_write(paths.credentials_toml, tomli_w.dumps(data).encode(), mode=0o600)


def is_enrolled(paths: StationPaths) -> bool:
    return paths.station_toml.exists() and paths.credentials_toml.exists()
