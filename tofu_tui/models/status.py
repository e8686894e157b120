"""A snapshot of a station's state: what `tofu-tui status --json` prints, what the
control socket answers to `status`, and what the console renders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class CommitInfo(BaseModel):
    sha: str
    message: str = ""
    branch: str | None = None


class DeploymentInfo(BaseModel):
    id: str
    sha: str
    message: str = ""
    branch: str | None = None
    deployed_at: datetime | None = None
    status: Literal["active", "staged", "fetching", "failed"] = "active"
    error: str | None = None


class UnitField(BaseModel):
    """One identify field as the procedure's `unit` section declares it."""

    default_value: str | None = None
    placeholder: str | None = None
    description: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None


class SubUnit(BaseModel):
    key: str
    label: str
    serial_number: UnitField | None = None


class UnitInfo(BaseModel):
    """The `unit` section of a procedure's active version (procedure-format §2.1): what
    a front end needs to build the identify form, or to skip it (`auto_identify`)."""

    auto_identify: bool = False
    serial_number: UnitField | None = None
    part_number: UnitField | None = None
    revision_number: UnitField | None = None
    batch_number: UnitField | None = None
    sub_units: list[SubUnit] = Field(default_factory=list)
    metadata: dict[str, UnitField] = Field(default_factory=dict)


class LinkedProcedure(BaseModel):
    id: str
    name: str
    identifier: str | None = None
    active: DeploymentInfo | None = None
    staged: DeploymentInfo | None = None
    runs_today: int = 0
    # The active version's `unit` section (empty when it declares none); None when
    # unknown (no active version, or it cannot be read).
    unit: UnitInfo | None = None


class QueueEntry(BaseModel):
    id: int
    client_run_ref: str
    procedure_id: str | None = None
    serial_number: str | None = None
    outcome: str | None = None
    state: Literal["pending", "backoff", "uploading", "parked", "done"] = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None


class QueueCounts(BaseModel):
    pending: int = 0
    backoff: int = 0
    parked: int = 0


class UptimeDay(BaseModel):
    date: date
    uptime: float | None = None  # 0..1, None before the station existed


class Uptime(BaseModel):
    days: list[UptimeDay] = Field(default_factory=list)
    last_24h: float | None = None
    last_7d: float | None = None
    last_90d: float | None = None


class StationStatus(BaseModel):
    station_id: str | None = None
    station_name: str | None = None
    server_url: str | None = None
    enrolled: bool = False
    connected: bool = False
    last_contact_at: datetime | None = None
    daemon_started_at: datetime | None = None
    procedures: list[LinkedProcedure] = Field(default_factory=list)
    queue: QueueCounts = Field(default_factory=QueueCounts)
    queue_entries: list[QueueEntry] = Field(default_factory=list)
    uptime: Uptime = Field(default_factory=Uptime)
    run_in_flight: str | None = None  # execution_id of the run in progress
