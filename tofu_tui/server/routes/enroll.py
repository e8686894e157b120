"""Setup tokens, redeeming them for a station key, and who-am-I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from sqlalchemy import select, update

from tofu_tui.server import db, schemas
from tofu_tui.server.deps import AnyKey, SessionDep, StateDep, UserKey
from tofu_tui.server.errors import ERROR_RESPONSES, APIError
from tofu_tui.server.keys import digest, display_prefix, new_api_key, new_id, new_setup_token
from tofu_tui.server.views import base_url, get_or_404, install_command

router = APIRouter(responses=ERROR_RESPONSES)


@router.post("/api/v2/stations/{id}/setup-token", response_model=schemas.SetupTokenOut, tags=["enrollment"])
def create_setup_token(id: str, request: Request, session: SessionDep, state: StateDep, _: UserKey) -> schemas.SetupTokenOut:
    """A one-hour, single-use token that enrolls a machine as this station."""
    station = get_or_404(session, db.Station, id, "station")
    token = new_setup_token()
    now = state.now()
    row = db.SetupToken(
        id=new_id(),
        station_id=station.id,
        token_hash=digest(token),
        created_at=now,
        expires_at=now + timedelta(seconds=state.settings.setup_token_ttl_seconds),
        used_at=None,
    )
    session.add(row)
    session.commit()
    url = base_url(request, state)
    return schemas.SetupTokenOut(token=token, expires_at=row.expires_at, install_command=install_command(url, token))


@router.post(
    "/api/cli/login/redeem",
    response_model=schemas.RedeemOut,
    tags=["enrollment"],
    responses={409: ERROR_RESPONSES[404] | {"description": "token_used"}, 410: ERROR_RESPONSES[404] | {"description": "token_expired"}},
)
def redeem(body: schemas.RedeemIn, session: SessionDep, state: StateDep) -> schemas.RedeemOut:
    """Trade a setup token for the station's key. The previous key of the station stops working."""
    row = session.execute(select(db.SetupToken).where(db.SetupToken.token_hash == digest(body.token))).scalar_one_or_none()
    if row is None:
        raise APIError(401, "token_invalid", "Unknown setup token: ask the dashboard for a new one.")
    now = state.now()
    if row.used_at is not None:
        raise APIError(409, "token_used", "This setup token was already used: ask the dashboard for a new one.")
    if now >= row.expires_at:
        raise APIError(410, "token_expired", "This setup token expired: ask the dashboard for a new one.")
    station = session.get(db.Station, row.station_id)
    if station is None or station.archived_at is not None:
        raise APIError(401, "token_invalid", "The station of this setup token was removed.")
    # Claim the token atomically, so two concurrent redeems cannot both succeed.
    claimed = session.execute(
        update(db.SetupToken).where(db.SetupToken.id == row.id, db.SetupToken.used_at.is_(None)).values(used_at=now)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise APIError(409, "token_used", "This setup token was already used: ask the dashboard for a new one.")
    session.execute(
        update(db.ApiKey).where(db.ApiKey.station_id == station.id, db.ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    key = new_api_key("station")
    session.add(
        db.ApiKey(
            id=new_id(), kind="station", station_id=station.id, key_hash=digest(key),
            prefix=display_prefix(key), name=body.hostname, created_at=now, revoked_at=None,
        )
    )
    station.installation_id = new_id()
    station.hostname = body.hostname
    station.os = body.os
    station.platform = body.platform
    station.mac_address = body.mac_address
    station.cli_version = body.cli_version
    session.commit()
    state.keys_revoked(station.id)
    return schemas.RedeemOut(
        api_key=key,
        station_id=station.id,
        station_name=station.name,
        organization_slug=state.settings.organization_slug,
        installation_id=station.installation_id,
    )


def _station_name(session: SessionDep, principal: AnyKey) -> str | None:
    if principal.station_id is None:
        return None
    station = session.get(db.Station, principal.station_id)
    return station.name if station else None


@router.get("/api/cli/whoami", response_model=schemas.CliWhoamiOut, tags=["enrollment"])
def cli_whoami(session: SessionDep, state: StateDep, principal: AnyKey) -> schemas.CliWhoamiOut:
    return schemas.CliWhoamiOut(
        auth_type="user" if principal.is_user else "station",
        station_id=principal.station_id,
        station_name=_station_name(session, principal),
        organization_slug=state.settings.organization_slug,
    )


@router.get("/api/v2/whoami", response_model=schemas.WhoamiOut, tags=["enrollment"])
def whoami(session: SessionDep, state: StateDep, principal: AnyKey) -> schemas.WhoamiOut:
    """The official client's identity call."""
    org = schemas.Organization(id=state.settings.organization_slug, slug=state.settings.organization_slug, name=state.settings.organization_name)
    if principal.is_user:
        return schemas.WhoamiOut(
            type="user", station=None, user=schemas.WhoamiUser(id=principal.key_id, email="admin@localhost", name="admin"), organization=org
        )
    return schemas.WhoamiOut(
        type="station",
        station=schemas.NamedRef(id=principal.station_id or "", name=_station_name(session, principal) or ""),
        user=None,
        organization=org,
    )


@router.post("/api/v2/keys", response_model=schemas.ApiKeyOut, tags=["keys"])
def create_user_key(body: schemas.ApiKeyIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.ApiKeyOut:
    """(ext) Another user (admin) key; the plain key is shown only in this answer."""
    key = new_api_key("user")
    row = db.ApiKey(
        id=new_id(), kind="user", station_id=None, key_hash=digest(key), prefix=display_prefix(key),
        name=body.name, created_at=state.now(), revoked_at=None,
    )
    session.add(row)
    session.commit()
    return schemas.ApiKeyOut(id=row.id, api_key=key, prefix=row.prefix)


@router.delete("/api/v2/keys/{id}", response_model=schemas.IdOut, tags=["keys"])
def revoke_key(id: str, session: SessionDep, state: StateDep, _: UserKey) -> schemas.IdOut:
    """(ext) Revoke a user or station key."""
    row = session.get(db.ApiKey, id)
    if row is None:
        raise APIError(404, "not_found", f"No key with id {id!r}.")
    row.revoked_at = row.revoked_at or state.now()
    session.commit()
    state.keys_revoked(row.station_id)
    return schemas.IdOut(id=id)
