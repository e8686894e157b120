"""The server's tables (SQLAlchemy 2) and engine set-up.

A run's phases, measurements and logs are stored as one JSON document beside the
columns the list filters use: a run is written once and read whole, and one row per
run keeps `runs.create` fast on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "user" | "station"
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(60), index=True)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]
    installation_id: Mapped[str | None] = mapped_column(String(36))
    hostname: Mapped[str | None] = mapped_column(String(255))
    os: Mapped[str | None] = mapped_column(String(100))
    platform: Mapped[str | None] = mapped_column(String(100))
    mac_address: Mapped[str | None] = mapped_column(String(64))
    cli_version: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None]
    last_heartbeat: Mapped[dict[str, Any] | None]


class SetupToken(Base):
    __tablename__ = "setup_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Procedure(Base):
    __tablename__ = "procedures"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    identifier: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    repo_url: Mapped[str | None] = mapped_column(Text)
    repo_branch: Mapped[str | None] = mapped_column(String(255))
    repo_path: Mapped[str | None] = mapped_column(Text)
    active_deployment_id: Mapped[str | None] = mapped_column(String(36))


class StationProcedure(Base):
    __tablename__ = "station_procedures"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    procedure_id: Mapped[str] = mapped_column(ForeignKey("procedures.id"), primary_key=True)
    linked_at: Mapped[datetime]


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    procedure_id: Mapped[str] = mapped_column(ForeignKey("procedures.id"), index=True)
    sha: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    ref: Mapped[str | None] = mapped_column(String(255))
    author: Mapped[str] = mapped_column(String(255))
    committed_at: Mapped[datetime | None]
    repo_url: Mapped[str] = mapped_column(Text)
    repo_path: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_procedure_started", "procedure_id", "started_at"),
        Index("ix_runs_started", "started_at"),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    procedure_id: Mapped[str] = mapped_column(ForeignKey("procedures.id"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"), index=True)
    created_by_key_id: Mapped[str | None] = mapped_column(String(36))
    client_run_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    serial_number: Mapped[str] = mapped_column(String(255), index=True)
    part_number: Mapped[str | None] = mapped_column(String(255))
    revision_number: Mapped[str | None] = mapped_column(String(255))
    batch_number: Mapped[str | None] = mapped_column(String(255))
    procedure_version: Mapped[str | None] = mapped_column(String(255))
    deployment_id: Mapped[str | None] = mapped_column(String(36))
    execution_id: Mapped[str | None] = mapped_column(String(255))
    slot_key: Mapped[str | None] = mapped_column(String(255))
    slot_name: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    created_at: Mapped[datetime]
    # The validated request body, verbatim (JSON text): written once, read whole.
    document: Mapped[str] = mapped_column(Text)


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))  # pending | uploaded | finalized
    owner_station_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    uploaded_at: Mapped[datetime | None]
    # (ext) the `Idempotency-Key` header of the create: a retry returns this record.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_attachments_owner_idempotency_key", "owner_station_id", "idempotency_key",
                            unique=True),)


class Command(Base):
    __tablename__ = "commands"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class StationEvent(Base):
    __tablename__ = "station_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    received_at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    # sha256 of the event's canonical JSON: the station re-sends what it cannot know
    # arrived (the events just before a connection dropped); a repeat is stored once.
    digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_station_events_station_digest", "station_id", "digest", unique=True),)


class Presence(Base):
    """One connected interval; `ended_at` is null while the stream is open."""

    __tablename__ = "presence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "stream" | "heartbeat"
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers never block the writer; NORMAL sync is durable across app crashes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
