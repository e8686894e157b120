"""Stations (TP), their procedures (ext linking), commands, heartbeat, uptime, events."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Body, Query
from sqlalchemy import delete, func, select

from tofu_tui.models.commands import Command
from tofu_tui.server import db, schemas
from tofu_tui.server.deps import AnyKey, SessionDep, StateDep, StationKey, UserKey
from tofu_tui.server.errors import ERROR_RESPONSES, APIError
from tofu_tui.server.keys import new_id
from tofu_tui.server.uptime import daily_uptime
from tofu_tui.server.views import (
    MAX_LIMIT,
    connection_status,
    get_or_404,
    linked_procedures,
    paginate,
    station_out,
)

router = APIRouter(responses=ERROR_RESPONSES, tags=["stations"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[int, Query(ge=0, le=2**31)]


def _name_taken(session: SessionDep, name: str, except_id: str | None = None) -> bool:
    query = select(db.Station.id).where(func.lower(db.Station.name) == name.lower(), db.Station.archived_at.is_(None))
    if except_id:
        query = query.where(db.Station.id != except_id)
    return session.execute(query).first() is not None


@router.post("/api/v2/stations", response_model=schemas.IdOut, responses={409: ERROR_RESPONSES[400]})
def create_station(body: schemas.StationCreateIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.IdOut:
    name = body.name.strip()
    if not name:
        raise APIError(422, "validation_error", "A station needs a name.")
    if _name_taken(session, name):
        raise APIError(409, "conflict", f"A station named {name!r} already exists: pick another name.")
    station = db.Station(id=new_id(), name=name, created_at=state.now())
    session.add(station)
    if body.procedure_id:
        get_or_404(session, db.Procedure, body.procedure_id, "procedure")
        session.add(db.StationProcedure(station_id=station.id, procedure_id=body.procedure_id, linked_at=state.now()))
    session.commit()
    return schemas.IdOut(id=station.id)


@router.get("/api/v2/stations", response_model=schemas.StationList)
def list_stations(
    session: SessionDep,
    state: StateDep,
    _: UserKey,
    limit: Limit = 50,
    cursor: Cursor = 0,
    search_query: Annotated[str | None, Query(max_length=200)] = None,
    procedure_ids: Annotated[list[str] | None, Query()] = None,
) -> schemas.StationList:
    query = select(db.Station).where(db.Station.archived_at.is_(None)).order_by(db.Station.created_at, db.Station.id)
    if search_query:
        query = query.where(db.Station.name.ilike(f"%{search_query}%"))
    if procedure_ids:
        query = query.where(
            db.Station.id.in_(select(db.StationProcedure.station_id).where(db.StationProcedure.procedure_id.in_(procedure_ids)))
        )
    rows, meta = paginate(session, query, limit, cursor)
    data = []
    for station in rows:
        procs = linked_procedures(session, station.id)
        data.append(
            schemas.StationListItem(
                id=station.id,
                name=station.name,
                procedures=[schemas.NamedRef(id=p.id, name=p.name) for p in procs],
                procedures_count=len(procs),
                connection_status=connection_status(state, station, session),  # type: ignore[arg-type]
                created_at=station.created_at,
            )
        )
    return schemas.StationList(data=data, meta=meta)


@router.get("/api/v2/stations/current", response_model=schemas.StationOut)
def current_station(session: SessionDep, state: StateDep, principal: StationKey) -> schemas.StationOut:
    """The calling station's configuration: its linked procedures and their active deployments."""
    station = get_or_404(session, db.Station, principal.station_id or "", "station")
    return station_out(session, state, station)


@router.get("/api/v2/stations/{id}", response_model=schemas.StationOut)
def get_station(id: str, session: SessionDep, state: StateDep, principal: AnyKey) -> schemas.StationOut:
    principal.check_station(id)
    return station_out(session, state, get_or_404(session, db.Station, id, "station"))


@router.patch("/api/v2/stations/{id}", response_model=schemas.StationUpdateOut, responses={409: ERROR_RESPONSES[400]})
def update_station(id: str, body: schemas.StationUpdateIn, session: SessionDep, _: UserKey) -> schemas.StationUpdateOut:
    station = get_or_404(session, db.Station, id, "station")
    if body.name is not None:
        name = body.name.strip()
        if not name:
            raise APIError(422, "validation_error", "A station needs a name.")
        if _name_taken(session, name, except_id=id):
            raise APIError(409, "conflict", f"A station named {name!r} already exists: pick another name.")
        station.name = name
    session.commit()
    return schemas.StationUpdateOut(id=station.id, name=station.name)


@router.delete("/api/v2/stations/{id}", response_model=schemas.IdOut)
def remove_station(id: str, session: SessionDep, state: StateDep, _: UserKey) -> schemas.IdOut:
    """Revoke the station's key; archive it when runs reference it, else delete it."""
    station = get_or_404(session, db.Station, id, "station")
    now = state.now()
    session.execute(delete(db.SetupToken).where(db.SetupToken.station_id == id))
    session.execute(delete(db.StationProcedure).where(db.StationProcedure.station_id == id))
    has_runs = session.execute(select(db.Run.seq).where(db.Run.station_id == id).limit(1)).first() is not None
    for key in session.execute(select(db.ApiKey).where(db.ApiKey.station_id == id)).scalars():
        key.revoked_at = key.revoked_at or now
        if not has_runs:
            # Kept, revoked: its station answers "revoked", not "unknown key".
            key.station_id = None
    if has_runs:
        station.archived_at = now
        # The name is free again for a new station.
        station.name = f"{station.name[:40]}~{id[:8]}"
    else:
        session.flush()
        for table in (db.Command, db.StationEvent, db.Presence):
            session.execute(delete(table).where(table.station_id == id))
        session.delete(station)
    session.commit()
    state.keys_revoked(id)
    return schemas.IdOut(id=id)


@router.post("/api/v2/stations/{id}/procedures", response_model=schemas.LinkOut)
def link_procedure(id: str, body: schemas.LinkIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.LinkOut:
    get_or_404(session, db.Station, id, "station")
    get_or_404(session, db.Procedure, body.procedure_id, "procedure")
    if session.get(db.StationProcedure, (id, body.procedure_id)) is None:
        session.add(db.StationProcedure(station_id=id, procedure_id=body.procedure_id, linked_at=state.now()))
        state.queue_command(session, id, {"name": "Pull"})
        session.commit()
        state.hub.wake(id)
    return schemas.LinkOut(station_id=id, procedure_id=body.procedure_id, linked=True)


@router.delete("/api/v2/stations/{id}/procedures/{procedure_id}", response_model=schemas.LinkOut)
def unlink_procedure(id: str, procedure_id: str, session: SessionDep, state: StateDep, _: UserKey) -> schemas.LinkOut:
    get_or_404(session, db.Station, id, "station")
    link = session.get(db.StationProcedure, (id, procedure_id))
    if link is None:
        raise APIError(404, "not_found", f"Procedure {procedure_id!r} is not linked to station {id!r}.")
    session.delete(link)
    state.queue_command(session, id, {"name": "Pull"})
    session.commit()
    state.hub.wake(id)
    return schemas.LinkOut(station_id=id, procedure_id=procedure_id, linked=False)


@router.post("/api/v2/stations/{id}/commands", status_code=202, response_model=schemas.CommandAccepted)
def send_command(
    id: str, command: Annotated[Command, Body()], session: SessionDep, state: StateDep, _: UserKey
) -> schemas.CommandAccepted:
    """Queue a command: sent on the station's stream now, or with its next heartbeat."""
    get_or_404(session, db.Station, id, "station")
    if command.name == "Run":
        get_or_404(session, db.Procedure, command.procedure_id, "procedure")  # type: ignore[union-attr]
        if session.get(db.StationProcedure, (id, command.procedure_id)) is None:  # type: ignore[union-attr]
            raise APIError(409, "not_linked", "That procedure is not linked to this station: link it first.")
    payload = command.model_dump(mode="json", exclude_none=True)
    payload.pop("id", None)
    if len(json.dumps(payload)) > state.settings.max_stream_message_bytes - 200:
        raise APIError(422, "command_too_large", "The command exceeds the stream's 60 kB message cap: send smaller ui_values.")
    command_id = state.queue_command(session, id, payload)
    session.commit()
    connected = state.hub.connected(id)
    state.hub.wake(id)
    return schemas.CommandAccepted(id=command_id, delivered=connected)


def record_heartbeat(session: SessionDep, state: StateDep, station: db.Station) -> None:
    """Presence over HTTP: extend the station's open heartbeat interval, or start one."""
    now = state.now()
    grace = state.settings.heartbeat_grace_seconds
    last = session.execute(
        select(db.Presence)
        .where(db.Presence.station_id == station.id, db.Presence.kind == "heartbeat")
        .order_by(db.Presence.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is not None and last.ended_at is not None and (now - last.ended_at).total_seconds() <= grace:
        last.ended_at = now
    else:
        session.add(db.Presence(station_id=station.id, kind="heartbeat", started_at=now, ended_at=now))
    station.last_seen_at = now


@router.post("/api/cli/heartbeat", response_model=schemas.HeartbeatOut, tags=["presence"])
def heartbeat(body: schemas.HeartbeatIn, session: SessionDep, state: StateDep, principal: StationKey) -> schemas.HeartbeatOut:
    station = get_or_404(session, db.Station, principal.station_id or "", "station")
    record_heartbeat(session, state, station)
    station.last_heartbeat = body.model_dump(mode="json")
    if body.cli_version:
        station.cli_version = body.cli_version
    session.commit()
    if body.acks is None:  # a station that does not acknowledge: each command once
        commands = state.take_commands(session, station.id)
    else:
        state.ack_commands(session, station.id, body.acks)
        commands = state.pending_commands(session, station.id)
    return schemas.HeartbeatOut(server_time=state.now(), commands=commands)


@router.get("/api/v2/stations/{id}/uptime", response_model=schemas.UptimeOut, tags=["presence"])
def uptime(
    id: str, session: SessionDep, state: StateDep, principal: AnyKey, days: Annotated[int, Query(ge=1, le=366)] = 90
) -> schemas.UptimeOut:
    principal.check_station(id)
    station = get_or_404(session, db.Station, id, "station")
    intervals = session.execute(
        select(db.Presence.started_at, db.Presence.ended_at).where(db.Presence.station_id == id)
    ).all()
    table = daily_uptime(list(intervals), created_at=station.created_at, now=state.now(), days=days)
    return schemas.UptimeOut(
        days=[schemas.UptimeDay(date=d, uptime=u) for d, u in table],
        connection_status=connection_status(state, station, session),  # type: ignore[arg-type]
        last_seen_at=station.last_seen_at,
    )


@router.get("/api/v2/stations/{id}/events", response_model=schemas.StationEventList, tags=["presence"])
def station_events(
    id: str,
    session: SessionDep,
    principal: AnyKey,
    limit: Limit = 100,
    cursor: Cursor = 0,
    type: Annotated[str | None, Query(max_length=64)] = None,
) -> schemas.StationEventList:
    """(ext) What the station streamed, oldest first."""
    principal.check_station(id)
    get_or_404(session, db.Station, id, "station")
    query = select(db.StationEvent).where(db.StationEvent.station_id == id).order_by(db.StationEvent.id)
    if type:
        query = query.where(db.StationEvent.type == type)
    rows, meta = paginate(session, query, limit, cursor)
    return schemas.StationEventList(
        data=[schemas.StationEventOut(id=r.id, received_at=r.received_at, type=r.type, event=r.payload) for r in rows],
        meta=meta,
    )
