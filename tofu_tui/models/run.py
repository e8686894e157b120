"""The run payload: the body of `POST /v2/runs`, shared by the engine that builds it,
the station that uploads it and the local server that stores it.

Field names and value sets follow TofuPilot's public v2 API (its official client's
`RunCreateRequest`), so the same body is accepted by TofuPilot's cloud and ours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]
PhaseOutcome = Literal["PASS", "FAIL", "SKIP", "ERROR"]
ValidatorOutcome = Literal["PASS", "FAIL", "UNSET"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

MetadataValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Validator(_Strict):
    operator: str | None = None
    expected_value: Any = None
    expression: str | None = None
    outcome: ValidatorOutcome | None = None


class Aggregation(_Strict):
    type: str
    value: Any = None
    unit: str | None = None
    outcome: ValidatorOutcome | None = None
    validators: list[Validator] | None = None


class Axis(_Strict):
    data: list[float]
    units: str | None = None
    name: str | None = None
    description: str | None = None
    validators: list[Validator] | None = None
    aggregations: list[Aggregation] | None = None


class Measurement(_Strict):
    name: str
    outcome: ValidatorOutcome
    measured_value: Any = None
    units: str | None = None
    docstring: str | None = None
    validators: list[Validator] | None = None
    aggregations: list[Aggregation] | None = None
    x_axis: Axis | None = None
    y_axis: list[Axis] | None = None


class Phase(_Strict):
    name: str
    outcome: PhaseOutcome
    started_at: datetime
    ended_at: datetime
    docstring: str | None = None
    retry_count: int | None = None
    measurements: list[Measurement] = Field(default_factory=list)


class Log(_Strict):
    level: LogLevel
    timestamp: datetime
    message: str
    source_file: str = "unknown"
    line_number: int = 0


class RunCreate(_Strict):
    """`POST /v2/runs`. `procedure_id` is null only in a local run's `run_finished`."""

    outcome: RunOutcome
    procedure_id: str | None = None
    procedure_version: str | None = None
    started_at: datetime
    ended_at: datetime
    serial_number: str
    part_number: str | None = None
    revision_number: str | None = None
    batch_number: str | None = None
    sub_units: list[str] | None = None
    docstring: str | None = None
    operated_by: str | None = None
    phases: list[Phase] = Field(default_factory=list)
    logs: list[Log] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] | None = None
    unit_metadata: dict[str, MetadataValue] | None = None
    deployment_id: str | None = None
    client_run_ref: str | None = None
    execution_id: str | None = None
    slot_key: str | None = None
    slot_name: str | None = None
