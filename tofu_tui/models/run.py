"""The run payload: the body of `POST /v2/runs`, shared by the engine that builds it,
the station that uploads it and the local server that stores it.

Field names and value sets follow TofuPilot's public v2 API (its official client's
`RunCreateRequest`), so the same body is accepted by TofuPilot's cloud and ours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RunOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]
PhaseOutcome = Literal["PASS", "FAIL", "SKIP", "ERROR"]
ValidatorOutcome = Literal["PASS", "FAIL", "UNSET"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SequenceOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED", "SKIP"]
ValueSource = Literal["default", "shell", "dotenv", "process", "station", "procedure", "organization"]

MetadataValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Validator(_Strict):
    operator: str | None = None
    expected_value: Any = None
    expression: str | None = None
    outcome: ValidatorOutcome | None = None
    is_decisive: bool | None = None


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
    # A list of units is the official client's legacy multi-dimensional form.
    units: str | list[str] | None = None
    docstring: str | None = None
    validators: list[Validator] | None = None
    aggregations: list[Aggregation] | None = None
    x_axis: Axis | None = None
    y_axis: list[Axis] | None = None
    # Deprecated in TofuPilot's API (validators replace them) but still sent by old clients.
    lower_limit: float | None = None
    upper_limit: float | None = None


class Phase(_Strict):
    name: str
    outcome: PhaseOutcome
    started_at: datetime
    ended_at: datetime
    docstring: str | None = None
    retry_count: int | None = None
    sequence_path: str | None = None
    measurements: list[Measurement] = Field(default_factory=list)

    @field_validator("measurements", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # The official client sends an explicit null for "no measurements".
        return [] if value is None else value


class Log(_Strict):
    level: LogLevel
    timestamp: datetime
    message: str
    source_file: str = "unknown"
    line_number: int = 0


class SequenceCall(_Strict):
    """A sequence call (`uses:`) grouping phases; phases join it by `sequence_path`."""

    path: str
    name: str
    outcome: SequenceOutcome
    source: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class ConfigValue(_Strict):
    key: str
    value: str | int | float | bool
    variable_id: str | None = None
    version: int | None = None
    source: ValueSource | None = None


class SecretRef(_Strict):
    """A secret the run used: never its value."""

    key: str
    variable_id: str | None = None
    version: int | None = None
    source: ValueSource | None = None


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
    sequences: list[SequenceCall] | None = None
    config: list[ConfigValue] | None = None
    secrets: list[SecretRef] | None = None

    @field_validator("phases", "logs", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value
