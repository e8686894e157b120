"""Validators and measurement checks (procedure-format §7.1, payload measurement §10)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tofu_tui.models.run import Measurement
from tofu_tui.procedure.schema import MeasurementSpec

Outcome = Literal["PASS", "FAIL", "UNSET"]


class YAxisRecord(BaseModel):
    data: list[Any] = Field(default_factory=list)
    aggregations: dict[str, Any] = Field(default_factory=dict)


class MeasurementRecord(BaseModel):
    """What a phase recorded for one key (last value wins, Q9)."""

    key: str
    value: Any = None
    has_value: bool = True
    aggregations: dict[str, Any] = Field(default_factory=dict)  # type -> value set by code
    x_axis: list[Any] | None = None
    y_axis: dict[str, YAxisRecord] | None = None


class EvaluatedMeasurement(BaseModel):
    key: str
    name: str
    unit: str | None = None
    live_outcome: Outcome
    check_failed: bool
    payload: Measurement | None = None


def evaluate_validator(operator: str | None, expected: Any, value: Any) -> Outcome:
    raise NotImplementedError  # stub: implemented next


def evaluate_measurement(spec: MeasurementSpec | None, record: MeasurementRecord) -> EvaluatedMeasurement:
    raise NotImplementedError  # stub: implemented next
