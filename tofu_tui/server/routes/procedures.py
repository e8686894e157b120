"""Procedures (TP), their linked repository (ext), deployments and rollback."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tofu_tui.server import db, gitrepo, schemas
from tofu_tui.server.deps import AnyKey, SessionDep, StateDep, UserKey
from tofu_tui.server.errors import ERROR_RESPONSES, APIError
from tofu_tui.server.keys import new_id
from tofu_tui.server.state import ServerState
from tofu_tui.server.views import (
    MAX_LIMIT,
    active_deployment,
    deployment_out,
    get_or_404,
    paginate,
    remove_attachment_files,
    repository_out,
    runs_count,
)

router = APIRouter(responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[int, Query(ge=0, le=2**31)]


def _identifier(session: Session, name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "procedure"
    candidate, n = base, 1
    while session.execute(select(db.Procedure.id).where(db.Procedure.identifier == candidate)).first():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _clean_path(path: str | None) -> str | None:
    if path is None:
        return None
    cleaned = path.strip().strip("/")
    if cleaned in ("", "."):
        return None
    if cleaned.startswith("/") or ".." in re.split(r"[\\/]", cleaned) or "\x00" in cleaned:
        raise APIError(422, "invalid_path", "The repository path must be a subfolder inside the repository.")
    return cleaned


@router.post("/api/v2/procedures", response_model=schemas.IdOut, tags=["procedures"])
def create_procedure(body: schemas.ProcedureCreateIn, session: SessionDep, state: StateDep, principal: UserKey) -> schemas.IdOut:
    name = body.name.strip()
    if not name:
        raise APIError(422, "validation_error", "A procedure needs a name.")
    procedure = db.Procedure(
        id=new_id(), name=name, identifier=_identifier(session, name), created_at=state.now(), created_by_key_id=principal.key_id
    )
    if body.repository:
        procedure.repo_url = body.repository.url.strip()
        procedure.repo_branch = body.repository.branch
        procedure.repo_path = _clean_path(body.repository.path)
    session.add(procedure)
    session.commit()
    return schemas.IdOut(id=procedure.id)


def _user_ref(key_id: str | None) -> schemas.UserRef:
    return schemas.UserRef(id=key_id or "admin", name="admin", email=None)


@router.get("/api/v2/procedures", response_model=schemas.ProcedureList, tags=["procedures"])
def list_procedures(
    session: SessionDep,
    _: UserKey,
    limit: Limit = 50,
    cursor: Cursor = 0,
    search_query: Annotated[str | None, Query(max_length=200)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> schemas.ProcedureList:
    query = select(db.Procedure).order_by(db.Procedure.created_at, db.Procedure.id)
    if search_query:
        query = query.where(db.Procedure.name.ilike(f"%{search_query}%"))
    if created_after:
        query = query.where(db.Procedure.created_at >= created_after)
    if created_before:
        query = query.where(db.Procedure.created_at <= created_before)
    rows, meta = paginate(session, query, limit, cursor)
    data = []
    for p in rows:
        linked = None
        if p.repo_url:
            name = gitrepo.describe(p.repo_url)
            full = f"{name.owner}/{name.name}" if name.owner else name.name
            linked = schemas.LinkedRepository(id=p.repo_url, name=name.name, fullName=full, provider=name.provider)  # type: ignore[arg-type]
        data.append(
            schemas.ProcedureListItem(
                id=p.id,
                identifier=p.identifier,
                name=p.name,
                created_at=p.created_at,
                created_by_user=_user_ref(p.created_by_key_id),
                linkedRepository=linked,
                repository=repository_out(p),
            )
        )
    return schemas.ProcedureList(data=data, meta=meta)


@router.get("/api/v2/procedures/{id}", response_model=schemas.ProcedureOut, tags=["procedures"])
def get_procedure(id: str, session: SessionDep, principal: AnyKey) -> schemas.ProcedureOut:
    procedure = get_or_404(session, db.Procedure, id, "procedure")
    if not principal.is_user and session.get(db.StationProcedure, (principal.station_id, id)) is None:
        raise APIError(403, "forbidden", "This procedure is not linked to this station.")
    recent_query = select(db.Run).where(db.Run.procedure_id == id).order_by(db.Run.started_at.desc()).limit(10)
    stations_query = (
        select(db.Station)
        .join(db.StationProcedure, db.StationProcedure.station_id == db.Station.id)
        .where(db.StationProcedure.procedure_id == id)
    )
    if not principal.is_user:  # a station key sees no other station's runs or name
        recent_query = recent_query.where(db.Run.station_id == principal.station_id)
        stations_query = stations_query.where(db.Station.id == principal.station_id)
    recent = session.execute(recent_query).scalars()
    stations = session.execute(stations_query).scalars()
    return schemas.ProcedureOut(
        id=procedure.id,
        identifier=procedure.identifier,
        name=procedure.name,
        created_at=procedure.created_at,
        created_by_user=_user_ref(procedure.created_by_key_id),
        runs_count=runs_count(session, id),
        recent_runs=[
            schemas.RecentRun(id=r.id, started_at=r.started_at, outcome=r.outcome, unit=schemas.UnitSerial(serial_number=r.serial_number))  # type: ignore[arg-type]
            for r in recent
        ],
        stations=[schemas.NamedRef(id=s.id, name=s.name) for s in stations],
        repository=repository_out(procedure),
        active_deployment=active_deployment(session, procedure),
    )


@router.patch("/api/v2/procedures/{id}", response_model=schemas.IdOut, tags=["procedures"])
def update_procedure(id: str, body: schemas.ProcedureUpdateIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.IdOut:
    procedure = get_or_404(session, db.Procedure, id, "procedure")
    if body.name is not None:
        if not body.name.strip():
            raise APIError(422, "validation_error", "A procedure needs a name.")
        procedure.name = body.name.strip()
    if "repository" in body.model_fields_set:
        if body.repository is None:
            procedure.repo_url = procedure.repo_branch = procedure.repo_path = None
        else:
            procedure.repo_url = body.repository.url.strip()
            procedure.repo_branch = body.repository.branch
            procedure.repo_path = _clean_path(body.repository.path)
    if body.productionBranch is not None:
        procedure.repo_branch = body.productionBranch
    if "rootDirectory" in body.model_fields_set:
        procedure.repo_path = _clean_path(body.rootDirectory)
    session.commit()
    return schemas.IdOut(id=id)


@router.delete("/api/v2/procedures/{id}", response_model=schemas.IdOut, tags=["procedures"])
def delete_procedure(id: str, session: SessionDep, state: StateDep, _: UserKey) -> schemas.IdOut:
    """Delete a procedure with its runs and their attachments, as TofuPilot's API does
    (its official client documents it so); its stations are told to pull."""
    get_or_404(session, db.Procedure, id, "procedure")
    runs = select(db.Run.id).where(db.Run.procedure_id == id)
    attachment_ids = list(session.execute(select(db.Attachment.id).where(db.Attachment.run_id.in_(runs))).scalars())
    session.execute(delete(db.Attachment).where(db.Attachment.run_id.in_(runs)))
    session.execute(delete(db.Run).where(db.Run.procedure_id == id))
    stations = list(session.execute(select(db.StationProcedure.station_id).where(db.StationProcedure.procedure_id == id)).scalars())
    session.execute(delete(db.StationProcedure).where(db.StationProcedure.procedure_id == id))
    session.execute(update(db.Procedure).where(db.Procedure.id == id).values(active_deployment_id=None))
    session.execute(delete(db.Deployment).where(db.Deployment.procedure_id == id))
    session.execute(delete(db.Procedure).where(db.Procedure.id == id))
    for station_id in stations:
        state.queue_command(session, station_id, {"name": "Pull"})
    session.commit()
    remove_attachment_files(state, attachment_ids)
    for station_id in stations:
        state.hub.wake(station_id)
    return schemas.IdOut(id=id)


def _roll_out(session: Session, state: ServerState, procedure_id: str) -> list[str]:
    """Tell every station linked to the procedure to pull (commit is the caller's)."""
    stations = list(
        session.execute(select(db.StationProcedure.station_id).where(db.StationProcedure.procedure_id == procedure_id)).scalars()
    )
    for station_id in stations:
        state.queue_command(session, station_id, {"name": "Pull"})
    return stations


@router.post("/api/v2/deployments", response_model=schemas.DeploymentOut, tags=["deployments"])
def create_deployment(body: schemas.DeploymentCreateIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.DeploymentOut:
    """Resolve a branch, tag or sha of the procedure's repository, make it the active
    deployment and send `Pull` to every linked station."""
    procedure = get_or_404(session, db.Procedure, body.procedure_id, "procedure")
    if not procedure.repo_url:
        raise APIError(
            409,
            "no_repository",
            "This procedure has no Git repository: link one first (PATCH the procedure with a repository, "
            "or create it with `tofu-tui server procedure create NAME --repo URL`).",
        )
    commit = gitrepo.resolve(
        state.settings.repos_dir, procedure.repo_url, ref=body.ref, sha=body.sha, default_branch=procedure.repo_branch or "main"
    )
    dep = db.Deployment(
        id=new_id(),
        procedure_id=procedure.id,
        sha=commit.sha,
        message=commit.message,
        branch=commit.branch,
        ref=body.ref or body.sha or procedure.repo_branch,
        author=commit.author,
        committed_at=commit.committed_at,
        repo_url=procedure.repo_url,
        repo_path=procedure.repo_path,
        trigger="manual",
        created_at=state.now(),
    )
    session.add(dep)
    session.flush()
    procedure.active_deployment_id = dep.id
    stations = _roll_out(session, state, procedure.id)
    session.commit()
    for station_id in stations:
        state.hub.wake(station_id)
    return deployment_out(session, dep)


@router.get("/api/v2/deployments", response_model=schemas.DeploymentList, tags=["deployments"])
def list_deployments(
    session: SessionDep,
    principal: AnyKey,
    procedure_ids: Annotated[list[str] | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = 0,
) -> schemas.DeploymentList:
    query = select(db.Deployment).order_by(db.Deployment.created_at.desc(), db.Deployment.id)
    if procedure_ids:
        query = query.where(db.Deployment.procedure_id.in_(procedure_ids))
    if not principal.is_user:
        query = query.where(
            db.Deployment.procedure_id.in_(
                select(db.StationProcedure.procedure_id).where(db.StationProcedure.station_id == principal.station_id)
            )
        )
    rows, meta = paginate(session, query, limit, cursor)
    data = []
    for dep in rows:
        full = deployment_out(session, dep, viewer=principal.station_id)
        assert full.commit is not None
        data.append(
            schemas.DeploymentListItem(
                id=dep.id,
                environment=full.environment,
                trigger=full.trigger,
                status=full.status,
                started_at=full.started_at,
                ended_at=full.ended_at,
                deployed_at=full.deployed_at,
                procedure=full.procedure,
                commit=schemas.DeploymentListCommit(
                    id=dep.sha, sha=dep.sha, message=dep.message, author_username=dep.author,
                    committed_at=dep.committed_at, branch=dep.branch,
                ),
                repository=schemas.ProviderOnly(provider=full.commit.repository.provider) if full.commit.repository else None,
                stations=[schemas.NamedRef(id=s.id, name=s.name) for s in full.stations],
                active=full.active,
            )
        )
    return schemas.DeploymentList(data=data, meta=meta)


@router.get("/api/v2/deployments/{id}", response_model=schemas.DeploymentOut, tags=["deployments"])
def get_deployment(id: str, session: SessionDep, principal: AnyKey) -> schemas.DeploymentOut:
    dep = get_or_404(session, db.Deployment, id, "deployment")
    if not principal.is_user and session.get(db.StationProcedure, (principal.station_id, dep.procedure_id)) is None:
        raise APIError(403, "forbidden", "This deployment's procedure is not linked to this station.")
    return deployment_out(session, dep, viewer=principal.station_id)


@router.post("/api/v2/procedures/{id}/rollback", response_model=schemas.DeploymentOut, tags=["deployments"])
def rollback(id: str, body: schemas.RollbackIn, session: SessionDep, state: StateDep, _: UserKey) -> schemas.DeploymentOut:
    """Make an earlier deployment active again (no rebuild); stations switch between runs."""
    procedure = get_or_404(session, db.Procedure, id, "procedure")
    dep = session.get(db.Deployment, body.deployment_id)
    if dep is None or dep.procedure_id != procedure.id:
        raise APIError(404, "not_found", f"Procedure {id!r} has no deployment {body.deployment_id!r}.")
    procedure.active_deployment_id = dep.id
    stations = _roll_out(session, state, procedure.id)
    session.commit()
    for station_id in stations:
        state.hub.wake(station_id)
    return deployment_out(session, dep)
