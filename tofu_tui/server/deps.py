"""Request dependencies: the database session, the server state and who is calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tofu_tui.server.errors import forbidden
from tofu_tui.server.state import Principal, ServerState

bearer = HTTPBearer(auto_error=False, description="A user (admin) key or a station key.")


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def get_session(request: Request) -> Iterator[Session]:
    with get_state(request).sessions() as session:
        yield session


StateDep = Annotated[ServerState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]


def authenticate(
    session: SessionDep,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return state.authenticate(session, credentials.credentials if credentials else None)


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
