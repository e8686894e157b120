"""Validators and measurement checks (procedure-format §7.1, payload measurement §10).

Values compared here are JSON values as the worker recorded them: a scalar measured
number is always a float, integers inside measured lists and mappings stay integers.
YAML numbers are floats when they stand alone or fill an all-number list; `==` tells
integers from floats, so a measured `[1, 2]` is not the YAML `[1, 2]` (as in the
reference engine).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from tofu_tui.models.run import Aggregation, Axis, Measurement, Validator
from tofu_tui.procedure.schema import AggregationSpec, AxisSpec, MeasurementSpec, ValidatorSpec

Outcome = Literal["PASS", "FAIL", "UNSET"]

_RE2_OPTIONS: Any = None


def re2_search(pattern: str, text: str) -> bool | None:
    """Whether RE2 `pattern` occurs anywhere in `text`; None if the pattern is invalid."""
    global _RE2_OPTIONS
    import re2  # only procedures with pattern validators pay for loading it

    if _RE2_OPTIONS is None:
        options = re2.Options()
        options.log_errors = False  # an invalid pattern is an UNSET outcome, not stderr noise
        _RE2_OPTIONS = options
    try:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
    except Exception:  # re2 raises its own error type for bad patterns
        return None
    return compiled.search(text) is not None


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

    @property
    def multi_dimensional(self) -> bool:
        return self.x_axis is not None or bool(self.y_axis)


class EvaluatedMeasurement(BaseModel):
    key: str
    name: str  # the YAML name, or the key for an undeclared measurement
    unit: str | None = None
    live_outcome: Outcome  # no value -> UNSET, any FAIL at any level -> FAIL, else PASS
    check_failed: bool  # a validator at any level failed (fails the phase, §7.2 row 5)
    payload: Measurement | None = None  # None when a malformed value drops it (§10)


# ---------------------------------------------------------------- one validator


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unwrap(expected: Any) -> Any:
    if isinstance(expected, list) and len(expected) == 1:
        return expected[0]
    return expected


def _yaml_numbers(expected: Any) -> Any:
    """YAML numbers standing alone or in an all-number list are floats."""
    if _is_number(expected):
        return float(expected)
    if isinstance(expected, list) and expected and all(_is_number(item) for item in expected):
        return [float(item) for item in expected]
    return expected


def json_equal(left: Any, right: Any) -> bool:
    """Deep JSON equality where an integer never equals a float and a bool never a number."""
    if _is_number(left) and _is_number(right):
        return type(left) is type(right) and left == right
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return False


def evaluate_validator(operator: str | None, expected: Any, value: Any) -> Outcome:
    """PASS, FAIL or UNSET for one validator against a measured value (§7.1)."""
    if operator in ("==", "!="):
        equal = json_equal(value, _yaml_numbers(_unwrap(expected)))
        return "PASS" if equal == (operator == "==") else "FAIL"
    if operator in (">", ">=", "<", "<="):
        bound = _unwrap(expected)
        if not (_is_number(value) and _is_number(bound)):
            return "UNSET"
        result = {
            ">": value > bound,
            ">=": value >= bound,
            "<": value < bound,
            "<=": value <= bound,
        }[operator]
        return "PASS" if result else "FAIL"
    if operator in ("in", "not in"):
        if not isinstance(expected, list):
            return "UNSET"
        members = _yaml_numbers(expected)
        found = any(json_equal(value, member) for member in members)
        return "PASS" if found == (operator == "in") else "FAIL"
    if operator == "matches":
        pattern = _unwrap(expected)
        if not isinstance(value, str) or not isinstance(pattern, str):
            return "UNSET"
        matched = re2_search(pattern, value)
        if matched is None:
            return "UNSET"
        return "PASS" if matched else "FAIL"
    return "UNSET"


def _validator_outcome(spec: ValidatorSpec, value: Any, has_value: bool) -> Outcome:
    if spec.outcome is not None:
        return spec.outcome
    if not has_value:
        return "UNSET"
    return evaluate_validator(spec.operator, spec.expected_value, value)


def _validators(specs: list[ValidatorSpec], value: Any, has_value: bool) -> list[Validator]:
    return [
        Validator(
            operator=spec.operator,
            expected_value=spec.expected_value,
            expression=spec.expression,
            outcome=_validator_outcome(spec, value, has_value),
        )
        for spec in specs
    ]


def combined_outcome(validators: list[Validator]) -> Outcome:
    """none -> UNSET, any FAIL -> FAIL, all PASS -> PASS, else UNSET (§7.4, Q7)."""
    if not validators:
        return "UNSET"
    outcomes = [validator.outcome for validator in validators]
    if "FAIL" in outcomes:
        return "FAIL"
    if all(outcome == "PASS" for outcome in outcomes):
        return "PASS"
    return "UNSET"


# ---------------------------------------------------------------- aggregations and axes


def _aggregations(specs: list[AggregationSpec], recorded: dict[str, Any]) -> list[Aggregation]:
    """YAML and code entries merged by type: code sets the value, YAML unit and validators."""
    merged: list[Aggregation] = []
    declared = set()
    for spec in specs:
        declared.add(spec.type)
        value = recorded.get(spec.type, spec.value)
        has_value = value is not None
        validators = _validators(spec.validators, value, has_value)
        if spec.outcome is not None:
            outcome: Outcome = spec.outcome
        elif validators and not has_value:
            outcome = "FAIL"  # Q11: validators but no value; does not fail the phase
        elif validators:
            outcome = "FAIL" if any(v.outcome == "FAIL" for v in validators) else "PASS"
        else:
            outcome = "UNSET"
        merged.append(
            Aggregation(
                type=spec.type,
                value=value,
                unit=spec.unit,
                outcome=outcome,
                validators=validators or None,
            )
        )
    for kind, value in recorded.items():
        if kind not in declared:
            merged.append(Aggregation(type=kind, value=value, outcome="UNSET"))
    return merged


def _numbers(data: list[Any]) -> list[float] | None:
    if all(_is_number(item) and math.isfinite(item) for item in data):
        return [float(item) for item in data]
    return None


def _axis(
    spec: AxisSpec | None, key: str | None, data: list[Any], recorded_aggregations: dict[str, Any]
) -> tuple[Axis | None, bool]:
    """(payload axis or None if its data is not numeric, whether any validator failed)."""
    validators = _validators(spec.validators, data, True) if spec else []
    aggregations = _aggregations(spec.aggregations if spec else [], recorded_aggregations)
    failed = any(v.outcome == "FAIL" for v in validators) or any(
        v.outcome == "FAIL" for aggregation in aggregations for v in aggregation.validators or []
    )
    numbers = _numbers(data)
    if numbers is None:
        return None, failed
    legend = spec.legend if spec and spec.legend else (key or "").replace("_", " ").strip().title() or None
    return (
        Axis(
            data=numbers,
            units=spec.unit if spec else None,
            name=legend,
            description=spec.description if spec else None,
            validators=validators or None,
            aggregations=aggregations or None,
        ),
        failed,
    )


def _match_y_axes(
    specs: list[AxisSpec], recorded: dict[str, YAxisRecord]
) -> list[tuple[str, YAxisRecord, AxisSpec | None]]:
    """Each recorded y axis with its YAML entry: by key, else by position."""
    by_key = {spec.key: spec for spec in specs if spec.key}
    matched = []
    for position, (key, axis) in enumerate(recorded.items()):
        spec = by_key.get(key)
        if spec is None and position < len(specs) and specs[position].key not in recorded:
            spec = specs[position]
        matched.append((key, axis, spec))
    return matched


# ---------------------------------------------------------------- one measurement


def evaluate_measurement(spec: MeasurementSpec | None, record: MeasurementRecord) -> EvaluatedMeasurement:
    """Validate a recorded measurement against its YAML entry (None if undeclared)."""
    validators = _validators(spec.validators if spec else [], record.value, record.has_value)
    aggregations = _aggregations(spec.aggregations if spec else [], record.aggregations)
    failed = any(v.outcome == "FAIL" for v in validators) or any(
        v.outcome == "FAIL" for aggregation in aggregations for v in aggregation.validators or []
    )
    payload: Measurement | None = Measurement(
        name=record.key,
        outcome=combined_outcome(validators),
        docstring=spec.description if spec else None,
        validators=validators or None,
        aggregations=aggregations or None,
    )
    assert payload is not None
    if record.multi_dimensional:
        x_data = record.x_axis or []
        x_spec = spec.x_axis if spec else None
        x_axis, x_failed = _axis(x_spec, x_spec.key if x_spec else None, x_data, {})
        if x_axis is None:  # non-numeric x data is sent empty
            x_axis, _ = _axis(x_spec, x_spec.key if x_spec else None, [], {})
        failed = failed or x_failed
        y_axes: list[Axis] = []
        for key, axis_record, axis_spec in _match_y_axes((spec.y_axis or []) if spec else [], record.y_axis or {}):
            y_axis, y_failed = _axis(axis_spec, key, axis_record.data, axis_record.aggregations)
            failed = failed or y_failed
            if y_axis is not None:  # a y axis with non-numeric data is dropped
                y_axes.append(y_axis)
        if record.x_axis is None or not record.y_axis:
            payload = None  # malformed: the whole measurement is dropped
        else:
            payload.x_axis = x_axis
            payload.y_axis = y_axes
    else:
        payload.measured_value = record.value
        payload.units = spec.unit if spec else None
    if not record.has_value and not record.multi_dimensional:
        live: Outcome = "UNSET"
    else:
        live = "FAIL" if failed else "PASS"
    return EvaluatedMeasurement(
        key=record.key,
        name=spec.name if spec else record.key,
        unit=spec.unit if spec else None,
        live_outcome=live,
        check_failed=failed,
        payload=payload,
    )
