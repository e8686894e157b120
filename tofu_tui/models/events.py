"""The one event model: every engine and station event, as typed pydantic models.

Producers publish an event once; the terminal view, the NDJSON stream (`--json`), the
dashboard stream, the run log file and the control socket all consume these same
objects. Field names follow `spec/run-protocol.md` exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PhaseOutcome = Literal["PASS", "FAIL", "SKIP", "ERROR", "TIMEOUT", "ABORTED"]
RunOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]
MeasurementOutcome = Literal["PASS", "FAIL", "UNSET"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as the run protocol requires."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


class _Event(BaseModel):
    # Built on first use: a process uses a handful of these classes, and building all
    # of them at import costs a one-phase `tofu-tui run` tens of milliseconds.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    execution_id: str = ""
    seq: int = 0
    ts: str = Field(default_factory=lambda: format_ts(utc_now()))


class ProcedureRef(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    version: str = ""


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    procedure: ProcedureRef
    unit: dict[str, Any] = Field(default_factory=dict)
    slot: str | None = None


class PhaseStarted(_Event):
    type: Literal["phase_started"] = "phase_started"
    phase_key: str
    phase_name: str
    attempt: int = 0
    slot: str | None = None


class PhaseLog(_Event):
    type: Literal["phase_log"] = "phase_log"
    phase_key: str | None = None
    level: LogLevel = "INFO"
    message: str
    slot: str | None = None


class MeasurementEvent(_Event):
    type: Literal["measurement"] = "measurement"
    phase_key: str
    key: str
    name: str
    value: Any = None
    unit: str | None = None
    outcome: MeasurementOutcome = "UNSET"
    # Limits for live displays: the measurement's validators as evaluated.
    validators: list[dict[str, Any]] = Field(default_factory=list)
    slot: str | None = None


class UiRequest(_Event):
    type: Literal["ui_request"] = "ui_request"
    request_id: str
    phase_key: str
    components: list[dict[str, Any]] = Field(default_factory=list)
    slot: str | None = None


class UiUpdate(_Event):
    type: Literal["ui_update"] = "ui_update"
    phase_key: str
    key: str
    value: Any = None
    slot: str | None = None


class UiClosed(_Event):
    """A prompt was answered, dismissed or timed out (front ends close their form)."""

    type: Literal["ui_closed"] = "ui_closed"
    request_id: str
    phase_key: str
    reason: str = "answered"
    slot: str | None = None


class AttachmentEvent(_Event):
    type: Literal["attachment"] = "attachment"
    phase_key: str
    name: str
    path: str
    size: int
    slot: str | None = None


class PhaseFinished(_Event):
    type: Literal["phase_finished"] = "phase_finished"
    phase_key: str
    attempt: int = 0
    outcome: PhaseOutcome
    duration_ms: float
    error: str | None = None
    slot: str | None = None


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    outcome: RunOutcome
    run: dict[str, Any]
    slot: str | None = None


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str


# --- station events (dashboard stream, headless log, console) -------------------


class DeploymentPulled(_Event):
    type: Literal["deployment_pulled"] = "deployment_pulled"
    procedure_id: str
    deployment_id: str
    sha: str
    status: Literal["active", "staged", "failed"] = "active"
    message: str | None = None


class UploadQueued(_Event):
    type: Literal["upload_queued"] = "upload_queued"
    queue_id: int
    client_run_ref: str


class UploadSucceeded(_Event):
    type: Literal["upload_succeeded"] = "upload_succeeded"
    queue_id: int
    client_run_ref: str
    run_id: str


class UploadParked(_Event):
    type: Literal["upload_parked"] = "upload_parked"
    queue_id: int
    client_run_ref: str
    error: str


class UploadBackoff(_Event):
    type: Literal["upload_backoff"] = "upload_backoff"
    queue_id: int
    client_run_ref: str
    error: str
    next_attempt_at: str


class ConnectivityChanged(_Event):
    type: Literal["connectivity_changed"] = "connectivity_changed"
    connected: bool
    detail: str | None = None


Event = Annotated[
    RunStarted
    | PhaseStarted
    | PhaseLog
    | MeasurementEvent
    | UiRequest
    | UiUpdate
    | UiClosed
    | AttachmentEvent
    | PhaseFinished
    | RunFinished
    | ErrorEvent
    | DeploymentPulled
    | UploadQueued
    | UploadSucceeded
    | UploadParked
    | UploadBackoff
    | ConnectivityChanged,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Parse one event from a JSON line or a dict (used by consumers of the stream)."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)
