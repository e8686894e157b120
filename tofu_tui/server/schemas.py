"""Request and response bodies of the HTTP API (api.md). Response shapes follow what
TofuPilot's official Python client parses, so it works against this server; fields
marked (ext) are ours."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tofu_tui.models.run import (
    LogLevel,
    PhaseOutcome,
    RunOutcome,
    SequenceOutcome,
    ValidatorOutcome,
)

Provider = Literal["github", "gitlab", "bitbucket"]
ConnectionStatus = Literal["connected", "disconnected"]
JSONScalar = str | int | float | bool


class _In(BaseModel):
    # Clients (the official one included) send fields we do not use; ignore them.
    model_config = ConfigDict(extra="ignore")


class IdOut(BaseModel):
    id: str


class ListMeta(BaseModel):
    has_more: bool
    next_cursor: int | None


class Health(BaseModel):
    status: Literal["ok"]


# --- enrollment and identity ---------------------------------------------------------


class SetupTokenOut(BaseModel):
    token: str
    expires_at: datetime
    install_command: str


class RedeemIn(_In):
    token: str = Field(min_length=1, max_length=256)
    hostname: str | None = Field(default=None, max_length=255)
    os: str | None = Field(default=None, max_length=100)
    platform: str | None = Field(default=None, max_length=100)
    mac_address: str | None = Field(default=None, max_length=64)
    cli_version: str | None = Field(default=None, max_length=64)


class RedeemOut(BaseModel):
    api_key: str
    station_id: str
    station_name: str
    organization_slug: str
    installation_id: str


class CliWhoamiOut(BaseModel):
    auth_type: Literal["station", "user"]
    station_id: str | None
    station_name: str | None
    organization_slug: str


class NamedRef(BaseModel):
    id: str
    name: str


class WhoamiUser(BaseModel):
    id: str
    email: str
    name: str | None


class Organization(BaseModel):
    id: str
    slug: str
    name: str


class WhoamiOut(BaseModel):
    type: Literal["station", "user"]
    station: NamedRef | None
    user: WhoamiUser | None
    organization: Organization


# --- stations ------------------------------------------------------------------------


class CommitBrief(BaseModel):
    sha: str
    message: str
    branch: str | None


class RepositoryBrief(BaseModel):
    url: str = Field(description="(ext) anything git can fetch: https, ssh, a local path")
    owner: str
    name: str
    provider: Provider
    gitlab_project_id: float | None = None


class ActiveDeployment(BaseModel):
    id: str
    deployed_at: str
    commit: CommitBrief | None
    repository: RepositoryBrief | None
    path: str | None = Field(description="(ext) subfolder holding procedure.yaml")


class StationProcedure(BaseModel):
    id: str
    identifier: str
    name: str
    runs_count: int
    deployment: ActiveDeployment | None


class StationOut(BaseModel):
    id: str
    name: str
    api_key: str | None = Field(description="prefix of the station's key, never the key")
    procedures: list[StationProcedure]
    organization_slug: str
    connection_status: ConnectionStatus
    team: NamedRef | None = None
    last_seen_at: datetime | None = None


class StationCreateIn(_In):
    name: str = Field(min_length=1, max_length=60)
    procedure_id: str | None = None


class StationUpdateIn(_In):
    name: str | None = Field(default=None, min_length=1, max_length=60)


class StationUpdateOut(BaseModel):
    id: str
    name: str


class StationListItem(BaseModel):
    id: str
    name: str
    procedures: list[NamedRef]
    procedures_count: int
    team: NamedRef | None = None
    connection_status: ConnectionStatus
    created_at: datetime


class StationList(BaseModel):
    data: list[StationListItem]
    meta: ListMeta


class LinkIn(_In):
    procedure_id: str = Field(min_length=1)


class LinkOut(BaseModel):
    station_id: str
    procedure_id: str
    linked: bool


class CommandAccepted(BaseModel):
    id: str
    delivered: bool = Field(description="(ext) sent on an open stream right away")


class QueueCounts(_In):
    pending: int = 0
    parked: int = 0


class HeartbeatIn(_In):
    status: str | dict[str, Any] | None = None
    cli_version: str | None = None
    active_deployments: list[Any] | dict[str, Any] | None = None
    queue: QueueCounts | None = None
    acks: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=1000,
        description="(ext) ids of the commands received since the last heartbeat. A station that sends this "
        "(even empty) gets each command again until it acknowledges it; one that does not gets each once.",
    )


class HeartbeatOut(BaseModel):
    server_time: datetime
    commands: list[dict[str, Any]]


class UptimeDay(BaseModel):
    date: date
    uptime: float | None


class UptimeOut(BaseModel):
    days: list[UptimeDay]
    connection_status: ConnectionStatus
    last_seen_at: datetime | None


class StationEventOut(BaseModel):
    id: int
    received_at: datetime
    type: str
    event: dict[str, Any]


class StationEventList(BaseModel):
    data: list[StationEventOut]
    meta: ListMeta


# --- procedures ----------------------------------------------------------------------


class RepositoryIn(_In):
    url: str = Field(min_length=1, max_length=2000)
    branch: str = Field(default="main", min_length=1, max_length=255)
    path: str | None = Field(default=None, max_length=1000)


class RepositoryOut(BaseModel):
    url: str
    branch: str
    path: str | None


class ProcedureCreateIn(_In):
    name: str = Field(min_length=1, max_length=200)
    repository: RepositoryIn | None = None


class ProcedureUpdateIn(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    repository: RepositoryIn | None = Field(default=None, description="(ext) null unlinks")
    productionBranch: str | None = Field(default=None, min_length=1, max_length=255)
    rootDirectory: str | None = Field(default=None, max_length=1000)


class UserRef(BaseModel):
    id: str
    name: str | None
    email: str | None


class LinkedRepository(BaseModel):
    id: str
    name: str
    fullName: str
    provider: Provider


class ProcedureListItem(BaseModel):
    id: str
    identifier: str
    name: str
    created_at: datetime
    created_by_user: UserRef
    linkedRepository: LinkedRepository | None
    repository: RepositoryOut | None


class ProcedureList(BaseModel):
    data: list[ProcedureListItem]
    meta: ListMeta


class UnitSerial(BaseModel):
    serial_number: str


class RecentRun(BaseModel):
    id: str
    started_at: datetime
    outcome: RunOutcome
    unit: UnitSerial | None


class ProcedureOut(BaseModel):
    id: str
    identifier: str
    name: str
    created_at: datetime
    created_by_user: UserRef | None
    runs_count: int
    recent_runs: list[RecentRun]
    stations: list[NamedRef]
    repository: RepositoryOut | None
    active_deployment: ActiveDeployment | None


# --- deployments ---------------------------------------------------------------------


class DeploymentCreateIn(_In):
    procedure_id: str = Field(min_length=1)
    ref: str | None = Field(default=None, min_length=1, max_length=255)
    sha: str | None = Field(default=None, min_length=4, max_length=64, pattern="^[0-9a-fA-F]+$")


class RollbackIn(_In):
    deployment_id: str = Field(min_length=1)


class BranchRef(BaseModel):
    id: str
    name: str


class DeploymentRepository(BaseModel):
    full_name: str
    provider: Provider
    url: str


class DeploymentCommit(BaseModel):
    id: str
    sha: str
    message: str
    author_username: str
    author_avatar_url: str | None = None
    committed_at: datetime | None
    branch: BranchRef | None
    repository: DeploymentRepository | None


class DeploymentStation(BaseModel):
    id: str
    name: str
    image_url: str | None = None
    pushed_at: datetime | None = None


class DeploymentOut(BaseModel):
    id: str
    environment: Literal["production", "preview", "development"]
    trigger: Literal["auto", "manual", "cli"]
    status: Literal["pending", "building", "ready", "failed"]
    deployed_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    artifact_url: str | None = None
    artifact_sha256: str | None = None
    artifact_size_bytes: float | None = None
    deployment_mode: Literal["sync", "standalone"] = "sync"
    platform: str | None = None
    language: str | None = None
    runtime_version: str | None = None
    procedure: NamedRef | None
    created_by_user: dict[str, Any] | None = None
    commit: DeploymentCommit | None
    stations: list[DeploymentStation]
    build_logs: list[dict[str, Any]] = Field(default_factory=list)
    active: bool = Field(description="(ext) the procedure's active deployment")
    path: str | None = Field(description="(ext) subfolder holding procedure.yaml")
    sha: str = Field(description="(ext) the commit sha, as `deploy --json` prints it")


class DeploymentListCommit(BaseModel):
    id: str
    sha: str
    message: str
    author_username: str
    author_avatar_url: str | None = None
    committed_at: datetime | None
    branch: str | None


class ProviderOnly(BaseModel):
    provider: Provider


class DeploymentListItem(BaseModel):
    id: str
    environment: Literal["production", "preview", "development"]
    trigger: Literal["auto", "manual", "cli"]
    status: Literal["pending", "building", "ready", "failed"]
    skipped: bool = False
    started_at: datetime | None
    ended_at: datetime | None
    deployed_at: datetime
    procedure: NamedRef | None
    commit: DeploymentListCommit | None
    repository: ProviderOnly | None
    stations: list[NamedRef]
    active: bool


class DeploymentList(BaseModel):
    data: list[DeploymentListItem]
    meta: ListMeta


# --- runs ----------------------------------------------------------------------------


class RunCreateOut(BaseModel):
    id: str


class VersionRef(BaseModel):
    id: str
    tag: str


class RunProcedure(BaseModel):
    id: str
    name: str
    version: VersionRef | None


class Revision(BaseModel):
    id: str
    number: str


class Part(BaseModel):
    id: str
    number: str
    name: str
    revision: Revision


class Batch(BaseModel):
    id: str
    number: str


class Unit(BaseModel):
    id: str
    serial_number: str
    sample: Literal["golden", "failing", "ignored"] | None = None
    part: Part
    batch: Batch | None = None


class OperatedBy(BaseModel):
    id: str | None
    name: str | None
    email: str | None


class ValidatorOut(BaseModel):
    outcome: ValidatorOutcome
    operator: str | None
    expected_value: Any = None
    expression: str
    is_decisive: bool | None
    is_expression_only: bool
    analytics_expression: str | None = None
    has_custom_expression: bool


class AggregationOut(BaseModel):
    id: str
    type: str
    outcome: ValidatorOutcome | None
    value: JSONScalar | None
    unit: str | None = None
    validators: list[ValidatorOut] | None = None


class DataSeries(BaseModel):
    data: list[float]
    units: str | None
    name: str | None = None
    description: str | None = None
    validators: list[ValidatorOut] | None = None
    aggregations: list[AggregationOut] | None = None


class MeasurementOut(BaseModel):
    id: str
    name: str
    outcome: ValidatorOutcome
    validators: list[ValidatorOut] | None
    units: str | None = None
    aggregations: list[AggregationOut] | None = None
    measured_value: Any = None
    data_series: list[DataSeries] | None = None
    docstring: str | None = None


class PhaseOut(BaseModel):
    id: str
    name: str
    outcome: PhaseOutcome
    started_at: datetime
    ended_at: datetime
    duration: str
    retry_count: int
    sequence_path: str | None
    measurements: list[MeasurementOut]
    docstring: str | None = None


class SequenceOut(BaseModel):
    id: str
    path: str
    key: str
    parent_path: str | None
    name: str
    source: str | None
    outcome: SequenceOutcome
    started_at: datetime | None
    ended_at: datetime | None
    duration: str | None


class AttachmentOut(BaseModel):
    id: str
    name: str
    size: float | None
    content_type: str | None
    is_report: bool = False
    download_url: str | None


class LogOut(BaseModel):
    id: str
    level: LogLevel
    timestamp: datetime
    message: str
    source_file: str
    line_number: int


class SubUnit(BaseModel):
    id: str
    serial_number: str
    part_number: str
    part_name: str | None


class ConfigOut(BaseModel):
    key: str
    value: JSONScalar
    variable_id: str | None
    version: int | None
    source: str | None


class SecretOut(BaseModel):
    key: str
    variable_id: str | None
    version: int | None
    source: str | None


class StationRef(BaseModel):
    id: str
    name: str


class RunSummary(BaseModel):
    id: str
    created_at: datetime
    started_at: datetime
    ended_at: datetime
    duration: str
    outcome: RunOutcome
    execution_id: str | None
    slot_key: str | None
    slot_name: str | None
    procedure: RunProcedure
    unit: Unit
    docstring: str | None = None
    created_by_user: UserRef | None = None
    created_by_station: StationRef | None = None
    operated_by: OperatedBy | None = None
    metadata: dict[str, JSONScalar] | None = None
    client_run_ref: str | None = Field(default=None, description="(ext)")
    deployment_id: str | None = Field(default=None, description="(ext)")


class RunOut(RunSummary):
    config: list[ConfigOut]
    secrets: list[SecretOut]
    phases: list[PhaseOut]
    sequences: list[SequenceOut]
    attachments: list[AttachmentOut]
    logs: list[LogOut]
    sub_units: list[SubUnit]
    unit_metadata: dict[str, JSONScalar] | None = None


class RunList(BaseModel):
    data: list[RunSummary]
    meta: ListMeta


class RunUpdateIn(_In):
    attachments: list[str] | None = Field(default=None, max_length=100)


class RunDeleteOut(BaseModel):
    id: list[str]


# --- attachments ---------------------------------------------------------------------


class AttachmentCreateIn(_In):
    name: str = Field(min_length=1, max_length=255)


class AttachmentCreateOut(BaseModel):
    id: str
    upload_url: str


class FinalizeOut(BaseModel):
    url: str


class UploadOut(BaseModel):
    id: str
    size: int


class ApiKeyIn(_In):
    name: str | None = Field(default=None, max_length=200)


class ApiKeyOut(BaseModel):
    id: str
    api_key: str
    prefix: str
