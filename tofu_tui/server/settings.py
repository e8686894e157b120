"""How one server instance is configured: its data folder, database and limits.

A clock is part of the settings so tests can move time (token expiry, uptime)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Settings:
    data_dir: Path
    db_url: str | None = None
    clock: Callable[[], datetime] = system_clock
    organization_slug: str = "local"
    organization_name: str = "Local dashboard"
    # The URL clients reach the server at; by default taken from each request.
    public_url: str | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    max_attachment_bytes: int = 256 * 1024 * 1024
    max_stream_message_bytes: int = 60 * 1024
    setup_token_ttl_seconds: int = 3600
    # A station that heartbeats over HTTP counts as connected this long after each beat.
    heartbeat_grace_seconds: int = 90
    ws_ping_interval: float = 15.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'server.db'}"

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    def now(self) -> datetime:
        now = self.clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)
