"""What one running server holds: settings, database, the live stream hub."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tofu_tui.server import db
from tofu_tui.server.errors import APIError
from tofu_tui.server.keys import digest, new_id
from tofu_tui.server.settings import Settings


class Hub:
    """Open station streams in this process. A wake-up tells a stream's sender to look
    for unacknowledged commands; the database stays the one source of truth, so a command
    is never lost when no stream is open (the next heartbeat carries it) nor when a send
    fails (it stays pending until the station acknowledges it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def register(self, station_id: str, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters[station_id].add((asyncio.get_running_loop(), event))

    def unregister(self, station_id: str, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters[station_id] = {w for w in self._waiters[station_id] if w[1] is not event}
            if not self._waiters[station_id]:
                del self._waiters[station_id]

    def connected(self, station_id: str) -> bool:
        with self._lock:
            return bool(self._waiters.get(station_id))

    def wake(self, station_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(station_id, ()))
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "station"
    key_id: str
    station_id: str | None

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def check_station(self, station_id: str) -> None:
        """A station key reaches only its own station's data."""
        if not self.is_user and self.station_id != station_id:
            raise APIError(403, "forbidden", "A station key can only access its own station.")


class ServerState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = db.make_engine(settings.database_url)
        self.sessions = db.make_sessionmaker(self.engine)
        self.hub = Hub()
        self.secret = ""
        # Key hash -> principal. Every revocation goes through this process and clears it.
        self._keys: dict[str, Principal] = {}
        self._keys_lock = threading.Lock()

    def authenticate(self, session: Session, key: str | None) -> Principal:
        if not key:
            raise APIError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
        hashed = digest(key)
        cached = self._keys.get(hashed)
        if cached is not None:
            return cached
        row = session.execute(select(db.ApiKey).where(db.ApiKey.key_hash == hashed)).scalar_one_or_none()
        if row is None:
            raise APIError(401, "unauthorized", "Unknown API key: check the key or create a new one.")
        if row.revoked_at is not None:
            raise APIError(401, "key_revoked", "This API key was revoked: enroll again with a new setup token.")
        principal = Principal(kind=row.kind, key_id=row.id, station_id=row.station_id)
        with self._keys_lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[hashed] = principal
        return principal

    def keys_revoked(self, *station_ids: str | None) -> None:
        """Call after revoking keys (commit first). The streams of these stations look
        at their key again, so one opened with a revoked key is closed at once."""
        with self._keys_lock:
            self._keys.clear()
        for station_id in station_ids:
            if station_id:
                self.hub.wake(station_id)

    def now(self) -> datetime:
        return self.settings.now()

    def startup(self) -> None:
        """Load the signing secret; close presence intervals a crash left open."""
        self.settings.attachments_dir.mkdir(parents=True, exist_ok=True)
        with self.sessions() as session:
            row = session.get(db.Meta, "signing_secret")
            if row is None:
                row = db.Meta(key="signing_secret", value=secrets.token_hex(32))
                session.add(row)
            self.secret = row.value
            open_rows = session.execute(
                select(db.Presence, db.Station.last_seen_at)
                .join(db.Station, db.Station.id == db.Presence.station_id)
                .where(db.Presence.ended_at.is_(None))
            ).all()
            for presence, last_seen in open_rows:
                presence.ended_at = max(last_seen or presence.started_at, presence.started_at)
            session.commit()

    def queue_command(self, session: Session, station_id: str, payload: dict[str, object]) -> str:
        """Store a command for a station (commit is the caller's); wake its stream."""
        command_id = str(payload.get("id") or new_id())
        payload = {**payload, "id": command_id}
        session.add(
            db.Command(id=command_id, station_id=station_id, payload=payload, created_at=self.now(), delivered_at=None)
        )
        return command_id

    def take_commands(self, session: Session, station_id: str) -> list[dict[str, object]]:
        """Undelivered commands for a station, marked delivered as they are taken: for a
        station that does not acknowledge (at most once)."""
        taken = self.pending_commands(session, station_id)
        if taken:
            self.ack_commands(session, station_id, [str(c["id"]) for c in taken])
        return taken

    def pending_commands(self, session: Session, station_id: str, skip: set[str] | None = None) -> list[dict[str, object]]:
        """Commands the station has not acknowledged yet, oldest first (minus `skip`):
        sent again until it does (at least once; the station drops a repeated id)."""
        rows = session.execute(
            select(db.Command)
            .where(db.Command.station_id == station_id, db.Command.delivered_at.is_(None))
            .order_by(db.Command.seq)
        ).scalars().all()
        return [dict(row.payload) for row in rows if not skip or row.id not in skip]

    def ack_commands(self, session: Session, station_id: str, ids: list[str]) -> None:
        """The station confirmed it received these commands (its own, by id)."""
        if not ids:
            return
        session.execute(
            update(db.Command)
            .where(db.Command.station_id == station_id, db.Command.id.in_(ids), db.Command.delivered_at.is_(None))
            .values(delivered_at=self.now())
        )
        session.commit()

    def dispose(self) -> None:
        self.engine.dispose()
