"""Runs (TP): create (validated, idempotent on `client_run_ref`), get, list, delete, and
attachments through both flows."""

from __future__ import annotations

import json
import mimetypes
import os
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, and_, asc, bindparam, delete, desc, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from tofu_tui.models.run import RunCreate
from tofu_tui.server import db, schemas
from tofu_tui.server.deps import AnyKey, Principal, SessionDep, StateDep, UserKey, bearer
from tofu_tui.server.errors import ERROR_RESPONSES, APIError, forbidden
from tofu_tui.server.keys import new_id, sign, signature_ok
from tofu_tui.server.state import ServerState
from tofu_tui.server.views import (
    MAX_LIMIT,
    base_url,
    duration,
    paginate,
    remove_attachment_files,
    stable_id,
)

router = APIRouter(responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[int, Query(ge=0, le=2**31)]
MAX_METADATA_KEYS = 50
_INDEXED = {
    "outcome", "procedure_id", "started_at", "ended_at", "serial_number", "part_number", "revision_number",
    "batch_number", "procedure_version", "deployment_id", "client_run_ref", "execution_id", "slot_key", "slot_name",
}


def _read_document(run: db.Run) -> dict[str, Any]:
    """The run body as the client sent it (stored verbatim, validated), shaped for reading:
    ids derived from the run's id and positions, deprecated limits as validators."""
    doc: dict[str, Any] = json.loads(run.document)
    phases = doc.get("phases") or []
    for p_index, phase in enumerate(phases):
        phase["id"] = stable_id(run.id, "phase", str(p_index))
        measurements = phase.get("measurements") or []
        for m_index, m in enumerate(measurements):
            m["id"] = stable_id(run.id, "measurement", str(p_index), str(m_index))
            # Deprecated limits become validators, as TofuPilot converts them.
            limits = [(">=", m.pop("lower_limit", None)), ("<=", m.pop("upper_limit", None))]
            extra = [{"operator": op, "expected_value": value} for op, value in limits if value is not None]
            if extra:
                m["validators"] = (m.get("validators") or []) + extra
        phase["measurements"] = measurements
    doc["phases"] = phases
    logs = doc.get("logs") or []
    for index, log in enumerate(logs):
        log["id"] = stable_id(run.id, "log", str(index))
    doc["logs"] = logs
    return doc


def _check_run(body: RunCreate) -> str:
    issues = []
    if not body.procedure_id:
        issues.append("procedure_id: required")
    if not body.serial_number.strip():
        issues.append("serial_number: must not be empty")
    if body.ended_at < body.started_at:
        issues.append("ended_at: must not be before started_at")
    for field in ("metadata", "unit_metadata"):
        value = getattr(body, field)
        if value and len(value) > MAX_METADATA_KEYS:
            issues.append(f"{field}: at most {MAX_METADATA_KEYS} keys")
    if body.sequences:
        paths = {s.path for s in body.sequences}
        for phase in body.phases:
            if phase.sequence_path and phase.sequence_path not in paths:
                issues.append(f"phases.{phase.name}.sequence_path: {phase.sequence_path!r} is not a sequence path")
    if issues:
        raise APIError(422, "validation_error", "The run is invalid: " + "; ".join(issues), issues)
    assert body.procedure_id is not None
    return body.procedure_id


_RUNS: Table = db.Run.__table__  # type: ignore[assignment]
_INSERT_RUN = insert(_RUNS)
_PROCEDURE_AND_LINK = (
    select(db.Procedure.id, db.StationProcedure.station_id)
    .select_from(db.Procedure)
    .outerjoin(
        db.StationProcedure,
        and_(
            db.StationProcedure.procedure_id == db.Procedure.id,
            db.StationProcedure.station_id == bindparam("station_id"),
        ),
    )
    .where(db.Procedure.id == bindparam("procedure_id"))
)

RUN_CREATE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunCreate"}}},
}


def _parse_run(raw: bytes) -> RunCreate:
    try:
        return RunCreate.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise APIError(400, "invalid_json", "The request body is not valid JSON: send a JSON object.") from None
        issues = [f"body.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".rstrip(".") if e["loc"] else f"body: {e['msg']}" for e in exc.errors()]
        raise APIError(422, "validation_error", "The run is invalid: " + "; ".join(issues[:5]), issues) from None


@router.post(
    "/api/v2/runs",
    response_model=schemas.RunCreateOut,
    tags=["runs"],
    responses={409: ERROR_RESPONSES[400], 413: ERROR_RESPONSES[400]},
    openapi_extra={"requestBody": RUN_CREATE_BODY},
    dependencies=[Depends(bearer)],
)
async def create_run(request: Request) -> Response:
    """Store a run. A `client_run_ref` already seen returns the run it created."""
    # The hot path of every station: parsed straight from the bytes, stored verbatim,
    # no thread hop (SQLite takes one writer at a time anyway).
    state: ServerState = request.app.state.server
    raw = await request.body()
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    with state.sessions() as session:
        principal = state.authenticate(session, key)
    body = _parse_run(raw)
    procedure_id = _check_run(body)
    run_id = new_id()
    with state.engine.connect() as conn:
        # Core statements built once: the compiled-statement cache does the rest.
        found = conn.execute(_PROCEDURE_AND_LINK, {"procedure_id": procedure_id, "station_id": principal.station_id}).first()
        if found is None:
            raise APIError(404, "not_found", f"No procedure with id {procedure_id!r}.")
        if not principal.is_user and found[1] is None:
            raise forbidden("This station is not linked to that procedure: link it on the dashboard first.")
        try:
            conn.execute(
                _INSERT_RUN,
                {
                    "id": run_id,
                    "procedure_id": procedure_id,
                    "station_id": principal.station_id,
                    "created_by_key_id": principal.key_id,
                    "client_run_ref": body.client_run_ref,
                    "outcome": body.outcome,
                    "serial_number": body.serial_number.strip(),
                    "part_number": body.part_number,
                    "revision_number": body.revision_number,
                    "batch_number": body.batch_number,
                    "procedure_version": body.procedure_version,
                    "deployment_id": body.deployment_id,
                    "execution_id": body.execution_id,
                    "slot_key": body.slot_key,
                    "slot_name": body.slot_name,
                    "started_at": body.started_at,
                    "ended_at": body.ended_at,
                    "created_at": state.now(),
                    "document": raw.decode("utf-8"),
                },
            )
            conn.commit()
        except IntegrityError:
            # The reference was seen before (a retry, or a concurrent twin): its run.
            conn.rollback()
            with state.sessions() as session:
                existing = _by_ref(session, body.client_run_ref or "")
                if existing is None:  # e.g. the procedure was deleted meanwhile
                    raise APIError(409, "conflict", "The run could not be stored; retry it.") from None
                run_id = _replay(existing, principal).id
    return Response(content=b'{"id":"' + run_id.encode() + b'"}', media_type="application/json")


def _by_ref(session: Session, ref: str) -> db.Run | None:
    return session.execute(select(db.Run).where(db.Run.client_run_ref == ref)).scalar_one_or_none()


def _replay(existing: db.Run, principal: Principal) -> schemas.RunCreateOut:
    if not principal.is_user and existing.station_id != principal.station_id:
        raise APIError(409, "conflict", "That client_run_ref belongs to another station's run.")
    return schemas.RunCreateOut(id=existing.id)


def _readable(session: Session, run_id: str, principal: Principal) -> db.Run:
    run = session.execute(select(db.Run).where(db.Run.id == run_id)).scalar_one_or_none()
    if run is None:
        raise APIError(404, "not_found", f"No run with id {run_id!r}.")
    if not principal.is_user and run.station_id != principal.station_id:
        raise forbidden("A station key can only read its own runs.")
    return run


def _validator(v: dict[str, Any]) -> schemas.ValidatorOut:
    operator = v.get("operator")
    expected = v.get("expected_value")
    expression = v.get("expression")
    if expression is None:
        expression = f"x {operator} {json.dumps(expected)}" if operator else json.dumps(expected)
    return schemas.ValidatorOut(
        outcome=v.get("outcome") or "UNSET",
        operator=operator,
        expected_value=expected,
        expression=expression,
        is_decisive=v.get("is_decisive", True),
        is_expression_only=operator is None,
        has_custom_expression=v.get("expression") is not None,
    )


def _aggregations(items: list[dict[str, Any]] | None, owner: str) -> list[schemas.AggregationOut] | None:
    if items is None:
        return None
    return [
        schemas.AggregationOut(
            id=stable_id(owner, "agg", str(i)),
            type=a["type"],
            outcome=a.get("outcome"),
            value=a.get("value") if isinstance(a.get("value"), str | int | float | bool) else None,
            unit=a.get("unit"),
            validators=[_validator(v) for v in a["validators"]] if a.get("validators") is not None else None,
        )
        for i, a in enumerate(items)
    ]


def _series(axis: dict[str, Any], owner: str) -> schemas.DataSeries:
    return schemas.DataSeries(
        data=axis["data"],
        units=axis.get("units"),
        name=axis.get("name"),
        description=axis.get("description"),
        validators=[_validator(v) for v in axis["validators"]] if axis.get("validators") is not None else None,
        aggregations=_aggregations(axis.get("aggregations"), owner),
    )


def _measurement(m: dict[str, Any]) -> schemas.MeasurementOut:
    units = m.get("units")
    series = None
    if m.get("x_axis") or m.get("y_axis"):
        axes = ([m["x_axis"]] if m.get("x_axis") else []) + list(m.get("y_axis") or [])
        series = [_series(a, f"{m['id']}:{i}") for i, a in enumerate(axes)]
    return schemas.MeasurementOut(
        id=m["id"],
        name=m["name"],
        outcome=m["outcome"],
        validators=[_validator(v) for v in m["validators"]] if m.get("validators") is not None else None,
        units=", ".join(units) if isinstance(units, list) else units,
        aggregations=_aggregations(m.get("aggregations"), m["id"]),
        measured_value=m.get("measured_value"),
        data_series=series,
        docstring=m.get("docstring"),
    )


_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _parse_dt(value: str | None) -> datetime | None:
    """A datetime of the stored body, parsed as it was accepted; one without a zone is
    UTC (as the run's own columns are), so every datetime read back has a timezone."""
    if not value:
        return None
    parsed = _DATETIME.validate_python(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _summary(run: db.Run, doc: dict[str, Any], procedure_name: str, station_name: str | None) -> dict[str, Any]:
    part_number = run.part_number or ""
    revision = run.revision_number or ""
    return {
        "id": run.id,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration": duration(run.started_at, run.ended_at),
        "outcome": run.outcome,
        "execution_id": run.execution_id,
        "slot_key": run.slot_key,
        "slot_name": run.slot_name,
        "procedure": schemas.RunProcedure(
            id=run.procedure_id,
            name=procedure_name,
            version=schemas.VersionRef(id=stable_id("version", run.procedure_id, run.procedure_version), tag=run.procedure_version)
            if run.procedure_version
            else None,
        ),
        "unit": schemas.Unit(
            id=stable_id("unit", run.serial_number, part_number),
            serial_number=run.serial_number,
            part=schemas.Part(
                id=stable_id("part", part_number),
                number=part_number,
                name=part_number,
                revision=schemas.Revision(id=stable_id("revision", part_number, revision), number=revision),
            ),
            batch=schemas.Batch(id=stable_id("batch", run.batch_number), number=run.batch_number) if run.batch_number else None,
        ),
        "docstring": doc.get("docstring"),
        "created_by_user": schemas.UserRef(id=run.created_by_key_id or "admin", name="admin", email=None)
        if run.station_id is None
        else None,
        "created_by_station": schemas.StationRef(id=run.station_id, name=station_name or "") if run.station_id else None,
        "operated_by": schemas.OperatedBy(id=None, name=doc["operated_by"], email=None) if doc.get("operated_by") else None,
        "metadata": doc.get("metadata"),
        "client_run_ref": run.client_run_ref,
        "deployment_id": run.deployment_id,
    }


def _names(session: Session, runs: list[db.Run]) -> tuple[dict[str, str], dict[str, str]]:
    proc_ids = {r.procedure_id for r in runs}
    station_ids = {r.station_id for r in runs if r.station_id}
    procs = dict(session.execute(select(db.Procedure.id, db.Procedure.name).where(db.Procedure.id.in_(proc_ids))).all()) if proc_ids else {}
    stations = dict(session.execute(select(db.Station.id, db.Station.name).where(db.Station.id.in_(station_ids))).all()) if station_ids else {}
    return procs, stations


def download_url(request: Request, state: ServerState, attachment_id: str) -> str:
    return f"{base_url(request, state)}/api/v2/attachments/{attachment_id}/content?sig={sign(state.secret, 'get:' + attachment_id)}"


def upload_url(request: Request, state: ServerState, attachment_id: str) -> str:
    return f"{base_url(request, state)}/api/v2/attachments/{attachment_id}/content?sig={sign(state.secret, 'put:' + attachment_id)}"


@router.get("/api/v2/runs/{id}", response_model=schemas.RunOut, tags=["runs"])
def get_run(id: str, request: Request, session: SessionDep, state: StateDep, principal: AnyKey) -> schemas.RunOut:
    run = _readable(session, id, principal)
    procs, stations = _names(session, [run])
    doc = _read_document(run)
    attachments = session.execute(
        select(db.Attachment)
        .where(db.Attachment.run_id == id, db.Attachment.status != "pending")
        .order_by(db.Attachment.created_at, db.Attachment.id)
    ).scalars()
    return schemas.RunOut(
        **_summary(run, doc, procs.get(run.procedure_id, ""), stations.get(run.station_id or "")),
        config=[
            schemas.ConfigOut(key=c["key"], value=c["value"], variable_id=c.get("variable_id"), version=c.get("version"), source=c.get("source"))
            for c in doc.get("config") or []
        ],
        secrets=[
            schemas.SecretOut(key=c["key"], variable_id=c.get("variable_id"), version=c.get("version"), source=c.get("source"))
            for c in doc.get("secrets") or []
        ],
        phases=[
            schemas.PhaseOut(
                id=p["id"],
                name=p["name"],
                outcome=p["outcome"],
                started_at=_parse_dt(p["started_at"]),
                ended_at=_parse_dt(p["ended_at"]),
                duration=duration(_parse_dt(p["started_at"]), _parse_dt(p["ended_at"])),
                retry_count=p.get("retry_count") or 0,
                sequence_path=p.get("sequence_path"),
                measurements=[_measurement(m) for m in p["measurements"]],
                docstring=p.get("docstring"),
            )
            for p in doc["phases"]
        ],
        sequences=[
            schemas.SequenceOut(
                id=stable_id(run.id, "sequence", s["path"]),
                path=s["path"],
                key=s["path"].rsplit("/", 1)[-1],
                parent_path=s["path"].rsplit("/", 1)[0] if "/" in s["path"] else None,
                name=s["name"],
                source=s.get("source"),
                outcome=s["outcome"],
                started_at=_parse_dt(s.get("started_at")),
                ended_at=_parse_dt(s.get("ended_at")),
                duration=duration(_parse_dt(s.get("started_at")), _parse_dt(s.get("ended_at")))
                if s.get("started_at") and s.get("ended_at")
                else None,
            )
            for s in doc.get("sequences") or []
        ],
        attachments=[
            schemas.AttachmentOut(
                id=a.id, name=a.name, size=a.size, content_type=a.content_type, download_url=download_url(request, state, a.id)
            )
            for a in attachments
        ],
        logs=[
            schemas.LogOut(
                id=log["id"], level=log["level"], timestamp=_parse_dt(log["timestamp"]), message=log["message"],
                source_file=log.get("source_file", "unknown"), line_number=log.get("line_number", 0),
            )
            for log in doc["logs"]
        ],
        sub_units=[
            schemas.SubUnit(id=stable_id("unit", sn, ""), serial_number=sn, part_number="", part_name=None)
            for sn in doc.get("sub_units") or []
        ],
        unit_metadata=doc.get("unit_metadata"),
    )


SortBy = Literal["started_at", "created_at", "duration", "outcome", "serial_number", "part_number", "revision_number"]
ListParam = Annotated[list[str] | None, Query()]


@router.get("/api/v2/runs", response_model=schemas.RunList, tags=["runs"])
def list_runs(
    session: SessionDep,
    principal: AnyKey,
    ids: ListParam = None,
    outcomes: Annotated[list[Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]] | None, Query()] = None,
    procedure_ids: ListParam = None,
    procedure_versions: ListParam = None,
    deployment_ids: ListParam = None,
    execution_ids: ListParam = None,
    slot_keys: ListParam = None,
    serial_numbers: ListParam = None,
    part_numbers: ListParam = None,
    revision_numbers: ListParam = None,
    batch_numbers: ListParam = None,
    created_by_station_ids: ListParam = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    ended_after: datetime | None = None,
    ended_before: datetime | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = 0,
    sort_by: SortBy = "started_at",
    sort_order: Literal["asc", "desc"] = "desc",
) -> schemas.RunList:
    query = select(db.Run)
    list_filters: list[tuple[Any, Any]] = [
        (db.Run.id, ids),
        (db.Run.outcome, outcomes),
        (db.Run.procedure_id, procedure_ids),
        (db.Run.procedure_version, procedure_versions),
        (db.Run.deployment_id, deployment_ids),
        (db.Run.execution_id, execution_ids),
        (db.Run.slot_key, slot_keys),
        (db.Run.serial_number, serial_numbers),
        (db.Run.part_number, part_numbers),
        (db.Run.revision_number, revision_numbers),
        (db.Run.batch_number, batch_numbers),
        (db.Run.station_id, created_by_station_ids),
    ]
    for column, values in list_filters:
        if values:
            query = query.where(column.in_(values))
    time_filters: list[tuple[Any, datetime | None, datetime | None]] = [
        (db.Run.started_at, started_after, started_before),
        (db.Run.ended_at, ended_after, ended_before),
        (db.Run.created_at, created_after, created_before),
    ]
    for column, after, before in time_filters:
        if after is not None:
            query = query.where(column >= after)
        if before is not None:
            query = query.where(column <= before)
    if not principal.is_user:
        query = query.where(db.Run.station_id == principal.station_id)
    order = asc if sort_order == "asc" else desc
    sort_column: Any = getattr(db.Run, sort_by, None)
    if sort_by == "duration":
        # SQLite keeps datetimes as text: subtract their Julian days instead.
        sqlite = session.get_bind().dialect.name == "sqlite"
        sort_column = (
            func.julianday(db.Run.ended_at) - func.julianday(db.Run.started_at)
            if sqlite
            else db.Run.ended_at - db.Run.started_at
        )
    query = query.order_by(order(sort_column), order(db.Run.seq))
    rows, meta = paginate(session, query, limit, cursor)
    procs, stations = _names(session, rows)
    return schemas.RunList(
        data=[
            schemas.RunSummary(**_summary(r, json.loads(r.document), procs.get(r.procedure_id, ""), stations.get(r.station_id or "")))
            for r in rows
        ],
        meta=meta,
    )


@router.delete("/api/v2/runs", response_model=schemas.RunDeleteOut, tags=["runs"])
def delete_runs(
    session: SessionDep, state: StateDep, _: UserKey, ids: Annotated[list[str], Query(min_length=1, max_length=100)]
) -> schemas.RunDeleteOut:
    found = list(session.execute(select(db.Run.id).where(db.Run.id.in_(ids))).scalars())
    if not found:
        raise APIError(404, "not_found", "None of these runs exist.")
    attachment_ids = list(session.execute(select(db.Attachment.id).where(db.Attachment.run_id.in_(found))).scalars())
    session.execute(delete(db.Attachment).where(db.Attachment.run_id.in_(found)))
    session.execute(delete(db.Run).where(db.Run.id.in_(found)))
    session.commit()
    remove_attachment_files(state, attachment_ids)
    return schemas.RunDeleteOut(id=found)


@router.patch("/api/v2/runs/{id}", response_model=schemas.IdOut, tags=["runs"])
def update_run(id: str, body: schemas.RunUpdateIn, session: SessionDep, principal: AnyKey) -> schemas.IdOut:
    """Attach uploaded attachments (the official client's second flow)."""
    run = _readable(session, id, principal)
    for attachment_id in body.attachments or []:
        attachment = session.get(db.Attachment, attachment_id)
        if attachment is None:
            raise APIError(404, "not_found", f"No attachment with id {attachment_id!r}.")
        if not principal.is_user and attachment.owner_station_id != principal.station_id:
            raise forbidden("That attachment belongs to another station.")
        if attachment.run_id not in (None, run.id):
            raise APIError(409, "conflict", f"Attachment {attachment_id!r} already belongs to another run.")
        if attachment.status == "pending":
            raise APIError(409, "not_uploaded", f"Attachment {attachment_id!r} has no content yet: PUT it to its upload_url first.")
        attachment.run_id = run.id
    session.commit()
    return schemas.IdOut(id=id)


# --- attachments ---------------------------------------------------------------------


def safe_name(name: str) -> str:
    """Attachment names are shown and offered as download names, never used as paths
    (the file on disk is named by id); still, refuse anything that looks like a path."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    bad = (
        not cleaned
        or cleaned in (".", "..")
        or any(c in cleaned for c in "/\\\x00")
        or any(unicodedata.category(c) == "Cc" for c in cleaned)
        or os.path.basename(cleaned) != cleaned
    )
    if bad:
        raise APIError(
            422,
            "invalid_name",
            f"Invalid attachment name {name!r}: use a plain file name without folders, '..' or control characters.",
        )
    return cleaned


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="(ext) Retrying a create with the same key returns the same attachment (a fresh upload_url), "
        "never a second one.",
    ),
]


def _same_attachment(session: Session, principal: Principal, key: str) -> db.Attachment | None:
    return session.execute(
        select(db.Attachment).where(
            db.Attachment.idempotency_key == key,
            db.Attachment.owner_station_id.is_(None)
            if principal.station_id is None
            else db.Attachment.owner_station_id == principal.station_id,
        )
    ).scalar_one_or_none()


def _replayed(request: Request, state: ServerState, attachment: db.Attachment, name: str, run_id: str | None) -> schemas.AttachmentCreateOut:
    if attachment.name != name or (run_id is not None and attachment.run_id != run_id):
        raise APIError(
            409,
            "idempotency_conflict",
            "This Idempotency-Key was already used for another attachment: send a new key for a new file.",
        )
    return schemas.AttachmentCreateOut(id=attachment.id, upload_url=upload_url(request, state, attachment.id))


def _new_attachment(
    request: Request, session: Session, state: ServerState, principal: Principal, name: str, run_id: str | None,
    idempotency_key: str | None = None,
) -> schemas.AttachmentCreateOut:
    cleaned = safe_name(name)
    if idempotency_key:
        earlier = _same_attachment(session, principal, idempotency_key)
        if earlier is not None:  # a retry whose first answer was lost (the station crashed, the network cut)
            return _replayed(request, state, earlier, cleaned, run_id)
    attachment = db.Attachment(
        id=new_id(),
        run_id=run_id,
        name=cleaned,
        content_type=mimetypes.guess_type(cleaned)[0],
        size=None,
        status="pending",
        owner_station_id=principal.station_id,
        created_at=state.now(),
        idempotency_key=idempotency_key or None,
    )
    session.add(attachment)
    try:
        session.commit()
    except IntegrityError:  # the same key, created concurrently: that one wins
        session.rollback()
        earlier = _same_attachment(session, principal, idempotency_key or "")
        if earlier is None:
            raise
        return _replayed(request, state, earlier, cleaned, run_id)
    return schemas.AttachmentCreateOut(id=attachment.id, upload_url=upload_url(request, state, attachment.id))


@router.post("/api/v2/runs/{id}/attachments", response_model=schemas.AttachmentCreateOut, tags=["attachments"])
def create_run_attachment(
    id: str, body: schemas.AttachmentCreateIn, request: Request, session: SessionDep, state: StateDep, principal: AnyKey,
    idempotency_key: IdempotencyKey = None,
) -> schemas.AttachmentCreateOut:
    """Start an upload attached to a run: PUT the bytes to `upload_url`."""
    run = _readable(session, id, principal)
    return _new_attachment(request, session, state, principal, body.name, run.id, idempotency_key)


@router.post("/api/v2/attachments", response_model=schemas.AttachmentCreateOut, tags=["attachments"])
def initialize_attachment(
    body: schemas.AttachmentCreateIn, request: Request, session: SessionDep, state: StateDep, principal: AnyKey,
    idempotency_key: IdempotencyKey = None,
) -> schemas.AttachmentCreateOut:
    """Start an upload not yet attached: PUT the bytes, then PATCH the run with its id."""
    return _new_attachment(request, session, state, principal, body.name, None, idempotency_key)


def _check_sig(state: ServerState, action: str, attachment_id: str, sig: str) -> None:
    if not signature_ok(state.secret, f"{action}:{attachment_id}", sig):
        raise APIError(403, "invalid_signature", "This upload/download URL is not valid: ask the API for a new one.")


@router.put("/api/v2/attachments/{id}/content", response_model=schemas.UploadOut, tags=["attachments"], responses={413: ERROR_RESPONSES[400]})
async def upload_content(id: str, request: Request, sig: Annotated[str, Query(max_length=128)]) -> schemas.UploadOut:
    """The `upload_url`: the bytes of the file, streamed to disk, size-limited."""
    state: ServerState = request.app.state.server
    _check_sig(state, "put", id, sig)
    with state.sessions() as session:
        attachment = session.get(db.Attachment, id)
        if attachment is None:
            raise APIError(404, "not_found", f"No attachment with id {id!r}.")
        if attachment.status == "finalized":
            raise APIError(409, "conflict", "This attachment is finalized; its content cannot change.")
    limit = state.settings.max_attachment_bytes
    folder = state.settings.attachments_dir
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{id}.{uuid.uuid4().hex}.part"
    size = 0
    try:
        with tmp.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"Attachments are limited to {limit} bytes.")
                out.write(chunk)
        tmp.replace(folder / id)
    finally:
        tmp.unlink(missing_ok=True)
    with state.sessions() as session:
        attachment = session.get(db.Attachment, id)
        if attachment is None:  # deleted with its run while uploading
            Path(folder / id).unlink(missing_ok=True)
            raise APIError(404, "not_found", f"No attachment with id {id!r}.")
        attachment.size = size
        attachment.status = "uploaded"
        attachment.uploaded_at = state.now()
        content_type = request.headers.get("content-type")
        if content_type and content_type != "application/octet-stream":
            attachment.content_type = content_type[:255]
        session.commit()
    return schemas.UploadOut(id=id, size=size)


@router.get("/api/v2/attachments/{id}/content", response_class=FileResponse, tags=["attachments"], responses={200: {"content": {"application/octet-stream": {}}}})
def download_content(id: str, session: SessionDep, state: StateDep, sig: Annotated[str, Query(max_length=128)]) -> FileResponse:
    """The `download_url` of an attachment."""
    _check_sig(state, "get", id, sig)
    attachment = session.get(db.Attachment, id)
    path = state.settings.attachments_dir / id
    if attachment is None or attachment.status == "pending" or not path.exists():
        raise APIError(404, "not_found", f"No content for attachment {id!r}.")
    return FileResponse(path, filename=attachment.name, media_type=attachment.content_type or "application/octet-stream")


@router.post("/api/v2/attachments/{id}/finalize", response_model=schemas.FinalizeOut, tags=["attachments"], responses={409: ERROR_RESPONSES[400]})
def finalize_attachment(id: str, request: Request, session: SessionDep, state: StateDep, principal: AnyKey) -> schemas.FinalizeOut:
    attachment = session.get(db.Attachment, id)
    if attachment is None:
        raise APIError(404, "not_found", f"No attachment with id {id!r}.")
    if not principal.is_user and attachment.owner_station_id != principal.station_id:
        raise forbidden("That attachment belongs to another station.")
    if attachment.status == "pending":
        raise APIError(409, "not_uploaded", "Upload the content to upload_url before finalizing.")
    attachment.status = "finalized"
    session.commit()
    return schemas.FinalizeOut(url=download_url(request, state, id))
