"""Request dependencies: the database session, the server state and who is calling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from tofu_tui.server import db
from tofu_tui.server.errors import APIError, forbidden
from tofu_tui.server.keys import digest
from tofu_tui.server.state import ServerState

bearer = HTTPBearer(auto_error=False, description="A user (admin) key or a station key.")


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def get_session(request: Request) -> Iterator[Session]:
    with get_state(request).sessions() as session:
        yield session


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
            raise forbidden("A station key can only access its own station.")


StateDep = Annotated[ServerState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]


def authenticate(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise APIError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
    row = session.execute(
        select(db.ApiKey).where(db.ApiKey.key_hash == digest(credentials.credentials))
    ).scalar_one_or_none()
    if row is None:
        raise APIError(401, "unauthorized", "Unknown API key: check the key or create a new one.")
    if row.revoked_at is not None:
        raise APIError(401, "key_revoked", "This API key was revoked: enroll again with a new setup token.")
    return Principal(kind=row.kind, key_id=row.id, station_id=row.station_id)


def require_user(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_user:
        raise forbidden("This needs a user (admin) key; station keys cannot do it.")
    return principal


def require_station(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.is_user or principal.station_id is None:
        raise forbidden("This needs a station key.")
    return principal


AnyKey = Annotated[Principal, Depends(authenticate)]
UserKey = Annotated[Principal, Depends(require_user)]
StationKey = Annotated[Principal, Depends(require_station)]
