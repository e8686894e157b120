"""Enrollment: redeem a setup token for a station key, forget it, show who we are."""

from __future__ import annotations

import platform
import socket
import sys
import uuid

from pydantic import SecretStr

from tofu_tui import __version__
from tofu_tui.station.api_client import ApiClient, Rejected, Unauthorized
from tofu_tui.station.config import (
    ConfigError,
    Credentials,
    StationConfig,
    load_config,
    load_credentials,
    save_config,
    save_credentials,
)
from tofu_tui.station.paths import StationPaths

DEFAULT_SERVER_URL = "https://www.tofupilot.app"

_NEW_TOKEN = "Generate a new setup token from the dashboard (the station's page) and run `tofu-tui login --token TOKEN` again."
_TOKEN_PROBLEMS = {
    "token_expired": "This setup token has expired (tokens are valid one hour).",
    "token_used": "This setup token was already used (each token works once).",
    "token_invalid": "The server does not know this setup token.",
}


class EnrollError(Exception):
    """Enrollment failed; the message says what to do."""


def fingerprint() -> dict[str, str]:
    """What the dashboard shows about the machine that redeemed the token."""
    node = uuid.getnode()
    mac = ":".join(f"{(node >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))
    return {
        "hostname": socket.gethostname(),
        "os": platform.system().lower() or sys.platform,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}".strip(),
        "mac_address": mac,
        "cli_version": __version__,
    }


def login(paths: StationPaths, token: str, server_url: str, ca_cert: str | None = None) -> StationConfig:
    token = token.strip()
    if not token:
        raise EnrollError("The setup token is empty. " + _NEW_TOKEN)
    with ApiClient(server_url, ca_cert=ca_cert) as client:
        try:
            redeemed = client.redeem(token, fingerprint())
        except (Rejected, Unauthorized) as exc:
            problem = _TOKEN_PROBLEMS.get(exc.code or "")
            if problem is None and exc.status in (401, 404, 409, 410):
                problem = _TOKEN_PROBLEMS["token_invalid" if exc.status in (401, 404) else
                                           "token_used" if exc.status == 409 else "token_expired"]
            if problem is not None:
                raise EnrollError(f"{problem} {_NEW_TOKEN}") from None
            raise EnrollError(f"{exc.message} Check the token and the server URL.") from None
    previous: StationConfig | None = None
    try:
        previous = load_config(paths)
    except ConfigError:
        pass
    settings = previous.model_dump(exclude={"server_url", "station_id", "station_name", "organization_slug",
                                            "installation_id", "ca_cert"}) if previous else {}
    config = StationConfig(
        server_url=server_url.rstrip("/"),
        station_id=redeemed.station_id,
        station_name=redeemed.station_name,
        organization_slug=redeemed.organization_slug,
        installation_id=redeemed.installation_id or (previous.installation_id if previous else "")
        or uuid.uuid4().hex,
        ca_cert=ca_cert,
        **settings,
    )
    paths.ensure()
    git_token = None
    try:
        git_token = load_credentials(paths).git_token
    except ConfigError:
        pass
    save_credentials(paths, Credentials(api_key=SecretStr(redeemed.api_key), git_token=git_token))
    save_config(paths, config)
    return config


def logout(paths: StationPaths) -> bool:
    """Forget the key. The queue and deployments stay: a new login picks them up."""
    existed = paths.credentials_toml.exists()
    paths.credentials_toml.unlink(missing_ok=True)
    return existed


def client_for(paths: StationPaths) -> tuple[StationConfig, ApiClient]:
    config = load_config(paths)
    credentials = load_credentials(paths)
    client = ApiClient(config.server_url, credentials.api_key.get_secret_value(), ca_cert=config.ca_cert,
                       user_agent=f"tofu-tui/{__version__}")
    return config, client
