"""Build response bodies from rows; shared by the route modules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tofu_tui.server import db, schemas
from tofu_tui.server.errors import not_found
from tofu_tui.server.gitrepo import describe
from tofu_tui.server.state import ServerState

T = TypeVar("T")
MAX_LIMIT = 100


def base_url(request: Request, state: ServerState) -> str:
    if state.settings.public_url:
        return state.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def install_command(url: str, token: str) -> str:
    # The token rides in the environment of `sh`, not its argv, so it never shows in
    # the process list while the installer runs.
    return f"curl -fsSL {url}/install.sh | TOFU_TUI_TOKEN={token} sh -s -- --url {url}"


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def duration(start: datetime | None, end: datetime | None) -> str:
    """ISO-8601 duration, e.g. PT1.250S."""
    if start is None or end is None:
        return "PT0S"
    seconds = max(0.0, (end - start).total_seconds())
    return f"PT{seconds:.3f}S".replace(".000S", "S")


def stable_id(*parts: str) -> str:
    """A deterministic id for things we do not store as rows (parts, revisions)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tofu-tui:" + ":".join(parts)))


def paginate(session: Session, query: Select[Any], limit: int, cursor: int) -> tuple[list[Any], schemas.ListMeta]:
    rows = list(session.execute(query.offset(cursor).limit(limit + 1)).scalars())
    has_more = len(rows) > limit
    meta = schemas.ListMeta(has_more=has_more, next_cursor=cursor + limit if has_more else None)
    return rows[:limit], meta


def remove_attachment_files(state: ServerState, attachment_ids: list[str]) -> None:
    """The stored bytes of deleted attachments (after the commit that deleted their rows)."""
    for attachment_id in attachment_ids:
        (state.settings.attachments_dir / attachment_id).unlink(missing_ok=True)


def get_or_404(session: Session, model: type[T], ident: str, what: str) -> T:
    row = session.get(model, ident)
    if row is None or getattr(row, "archived_at", None) is not None:
        raise not_found(what, ident)
    return row


def connection_status(state: ServerState, station: db.Station, session: Session | None = None) -> str:
    """Connected: a stream is open here, or the station heartbeated within the grace."""
    if state.hub.connected(station.id):
        return "connected"
    if station.last_seen_at is None or session is None:
        return "disconnected"
    last_beat = session.execute(
        select(db.Presence.ended_at)
        .where(db.Presence.station_id == station.id, db.Presence.kind == "heartbeat")
        .order_by(db.Presence.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last_beat is not None and (state.now() - last_beat).total_seconds() <= state.settings.heartbeat_grace_seconds:
        return "connected"
    return "disconnected"


def active_deployment(session: Session, procedure: db.Procedure) -> schemas.ActiveDeployment | None:
    if not procedure.active_deployment_id:
        return None
    dep = session.get(db.Deployment, procedure.active_deployment_id)
    if dep is None:
        return None
    name = describe(dep.repo_url)
    return schemas.ActiveDeployment(
        id=dep.id,
        deployed_at=iso(dep.created_at),
        commit=schemas.CommitBrief(sha=dep.sha, message=dep.message, branch=dep.branch),
        repository=schemas.RepositoryBrief(
            url=dep.repo_url, owner=name.owner, name=name.name, provider=name.provider  # type: ignore[arg-type]
        ),
        path=dep.repo_path,
    )


def runs_count(session: Session, procedure_id: str, station_id: str | None = None) -> int:
    query = select(func.count()).select_from(db.Run).where(db.Run.procedure_id == procedure_id)
    if station_id is not None:
        query = query.where(db.Run.station_id == station_id)
    return int(session.execute(query).scalar_one())


def linked_procedures(session: Session, station_id: str) -> list[db.Procedure]:
    return list(
        session.execute(
            select(db.Procedure)
            .join(db.StationProcedure, db.StationProcedure.procedure_id == db.Procedure.id)
            .where(db.StationProcedure.station_id == station_id)
            .order_by(db.StationProcedure.linked_at, db.Procedure.name)
        ).scalars()
    )


def station_out(session: Session, state: ServerState, station: db.Station) -> schemas.StationOut:
    key = session.execute(
        select(db.ApiKey).where(db.ApiKey.station_id == station.id, db.ApiKey.revoked_at.is_(None))
    ).scalars().first()
    return schemas.StationOut(
        id=station.id,
        name=station.name,
        api_key=key.prefix if key else None,
        procedures=[
            schemas.StationProcedure(
                id=p.id,
                identifier=p.identifier,
                name=p.name,
                runs_count=runs_count(session, p.id),
                deployment=active_deployment(session, p),
            )
            for p in linked_procedures(session, station.id)
        ],
        organization_slug=state.settings.organization_slug,
        connection_status=connection_status(state, station, session),  # type: ignore[arg-type]
        last_seen_at=station.last_seen_at,
    )


def repository_out(procedure: db.Procedure) -> schemas.RepositoryOut | None:
    if not procedure.repo_url:
        return None
    return schemas.RepositoryOut(url=procedure.repo_url, branch=procedure.repo_branch or "main", path=procedure.repo_path)


def deployment_out(session: Session, dep: db.Deployment, viewer: str | None = None) -> schemas.DeploymentOut:
    """`viewer`: the station whose key asks; it is shown no other station."""
    procedure = session.get(db.Procedure, dep.procedure_id)
    query = (
        select(db.Station)
        .join(db.StationProcedure, db.StationProcedure.station_id == db.Station.id)
        .where(db.StationProcedure.procedure_id == dep.procedure_id, db.Station.archived_at.is_(None))
    )
    if viewer is not None:
        query = query.where(db.Station.id == viewer)
    stations = [schemas.DeploymentStation(id=s.id, name=s.name) for s in session.execute(query).scalars()]
    name = describe(dep.repo_url)
    return schemas.DeploymentOut(
        id=dep.id,
        environment="production",
        trigger=dep.trigger,  # type: ignore[arg-type]
        status="ready",
        deployed_at=dep.created_at,
        started_at=dep.created_at,
        ended_at=dep.created_at,
        procedure=schemas.NamedRef(id=procedure.id, name=procedure.name) if procedure else None,
        commit=schemas.DeploymentCommit(
            id=dep.sha,
            sha=dep.sha,
            message=dep.message,
            author_username=dep.author,
            committed_at=dep.committed_at,
            branch=schemas.BranchRef(id=dep.branch, name=dep.branch) if dep.branch else None,
            repository=schemas.DeploymentRepository(
                full_name=f"{name.owner}/{name.name}" if name.owner else name.name,
                provider=name.provider,  # type: ignore[arg-type]
                url=dep.repo_url,
            ),
        ),
        stations=stations,
        active=procedure is not None and procedure.active_deployment_id == dep.id,
        path=dep.repo_path,
        sha=dep.sha,
    )
