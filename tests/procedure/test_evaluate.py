"""§7.1 validators, aggregations, axes and the payload measurement (§10)."""

from __future__ import annotations

from typing import Any

import pytest

from tofu_tui.procedure.evaluate import (
    MeasurementRecord,
    YAxisRecord,
    evaluate_measurement,
    evaluate_validator,
)
from tofu_tui.procedure.schema import MeasurementSpec

CASES: list[tuple[str | None, Any, Any, str]] = [
    # == / != : deep JSON equality, one-element list unwrapped, int/float rule
    ("==", 5, 5.0, "PASS"),  # YAML scalar numbers are floats; measured scalars are floats
    ("==", 5.5, 5.5, "PASS"),
    ("==", 5, 6.0, "FAIL"),
    ("!=", 5, 6.0, "PASS"),
    ("!=", 5, 5.0, "FAIL"),
    ("==", [5], 5.0, "PASS"),  # one-element list unwrapped
    ("==", ["green"], "green", "PASS"),
    ("==", "green", "green", "PASS"),
    ("==", "green", "Green", "FAIL"),
    ("==", [1, 2], [1, 2], "FAIL"),  # measured ints stay ints, YAML all-number list is floats
    ("==", [1, 2], [1.0, 2.0], "PASS"),
    ("==", [1, "a"], [1, "a"], "PASS"),  # a mixed YAML list keeps its integers
    ("==", {"a": 1, "b": [True]}, {"a": 1, "b": [True]}, "PASS"),
    ("==", {"a": 1}, {"a": 1.0}, "FAIL"),
    ("==", {"a": 1}, {"a": 1, "b": 2}, "FAIL"),
    ("==", True, True, "PASS"),
    ("==", True, 1.0, "FAIL"),  # a bool is not a number
    ("==", 1, True, "FAIL"),
    ("==", None, None, "PASS"),
    ("==", "x", None, "FAIL"),  # a None value is still evaluated: == fails
    ("!=", "x", None, "PASS"),
    ("==", [[1, 2]], [1, 2], "FAIL"),  # unwraps to the inner list, which is YAML ints
    # numeric operators
    (">", 1, 2.0, "PASS"),
    (">", 2, 2.0, "FAIL"),
    (">=", 2, 2.0, "PASS"),
    ("<", 3, 2.5, "PASS"),
    ("<", 2.5, 2.5, "FAIL"),
    ("<=", 2.5, 2.5, "PASS"),
    ("<=", [3], 2.0, "PASS"),  # one-element expected list unwrapped
    (">=", [1, 2], 2.0, "UNSET"),  # a longer list is not a number
    (">", "1", 2.0, "UNSET"),  # a string expected value does not fit
    (">", 1, "2", "UNSET"),  # a string measured value does not fit
    (">", True, 2.0, "UNSET"),  # bool is not a number, either side
    (">", 1, True, "UNSET"),
    (">", 1, None, "UNSET"),  # None with numeric operators
    (">", None, 1.0, "UNSET"),
    ("<", {"a": 1}, 1.0, "UNSET"),
    # in / not in
    ("in", ["red", "green"], "green", "PASS"),
    ("in", ["red", "green"], "blue", "FAIL"),
    ("not in", ["red", "green"], "blue", "PASS"),
    ("not in", ["red", "green"], "red", "FAIL"),
    ("in", [1, 2, 3], 2.0, "PASS"),  # all-number YAML list is floats
    ("in", [1, "a"], 1.0, "FAIL"),  # mixed list keeps 1 as an integer
    ("in", "green", "green", "UNSET"),  # expected must be a list
    ("not in", 5, 5.0, "UNSET"),
    ("in", ["a", None], None, "PASS"),
    ("in", ["a"], None, "FAIL"),
    # matches: RE2, searched not anchored
    ("matches", "^SN-[0-9]{4}$", "SN-1234", "PASS"),
    ("matches", "[0-9]{4}", "SN-1234-X", "PASS"),
    ("matches", "^[0-9]{4}", "SN-1234", "FAIL"),
    ("matches", ["abc"], "xxabcxx", "PASS"),  # one-element list pattern
    ("matches", ["a", "b"], "a", "UNSET"),  # a longer list is not a pattern
    ("matches", "a(", "a(", "UNSET"),  # invalid pattern
    ("matches", "(?P<n>a)\\1", "aa", "UNSET"),  # backreferences are not RE2
    ("matches", "1", 1.0, "UNSET"),  # value must be a string
    ("matches", "x", None, "UNSET"),
    ("matches", 5, "5", "UNSET"),
    # anything else
    ("~=", 1, 1.0, "UNSET"),
    ("===", 1, 1.0, "UNSET"),
    ("", 1, 1.0, "UNSET"),
    (None, 1, 1.0, "UNSET"),
]


@pytest.mark.parametrize(("operator", "expected", "value", "outcome"), CASES)
def test_evaluate_validator(operator: str | None, expected: Any, value: Any, outcome: str) -> None:
    assert evaluate_validator(operator, expected, value) == outcome


def spec(data: dict[str, Any]) -> MeasurementSpec:
    return MeasurementSpec.model_validate({"name": "Output Current", **data})


def test_scalar_payload() -> None:
    measurement = spec(
        {
            "unit": "A",
            "description": "Current into the load",
            "validators": [
                {"operator": ">=", "expected_value": 1.9, "expression": "I >= 1.9"},
                {"operator": "<=", "expected_value": 2.1},
            ],
        }
    )
    result = evaluate_measurement(measurement, MeasurementRecord(key="output_current", value=2.0))
    assert (result.live_outcome, result.check_failed, result.name, result.unit) == (
        "PASS",
        False,
        "Output Current",
        "A",
    )
    assert result.payload is not None
    assert result.payload.model_dump(exclude_none=True) == {
        "name": "output_current",
        "outcome": "PASS",
        "measured_value": 2.0,
        "units": "A",
        "docstring": "Current into the load",
        "validators": [
            {"operator": ">=", "expected_value": 1.9, "expression": "I >= 1.9", "outcome": "PASS"},
            {"operator": "<=", "expected_value": 2.1, "outcome": "PASS"},
        ],
    }


def test_failing_scalar() -> None:
    measurement = spec({"validators": [{"operator": ">=", "expected_value": 1.9}]})
    result = evaluate_measurement(measurement, MeasurementRecord(key="output_current", value=1.0))
    assert (result.live_outcome, result.check_failed) == ("FAIL", True)
    assert result.payload is not None and result.payload.outcome == "FAIL"


def test_expected_value_that_does_not_fit_is_unset_not_a_crash() -> None:
    measurement = spec(
        {
            "validators": [
                {"operator": ">", "expected_value": "high"},
                {"operator": "in", "expected_value": {"a": 1}},
                {"operator": "matches", "expected_value": "[unclosed"},
                {"operator": "between", "expected_value": [1, 2]},
            ]
        }
    )
    result = evaluate_measurement(measurement, MeasurementRecord(key="output_current", value="x"))
    assert result.payload is not None
    assert [v.outcome for v in result.payload.validators or []] == ["UNSET"] * 4
    assert result.payload.outcome == "UNSET"
    assert (result.live_outcome, result.check_failed) == ("PASS", False)


def test_payload_outcome_mixed_pass_and_unset_is_unset() -> None:
    measurement = spec(
        {"validators": [{"operator": ">", "expected_value": 1}, {"operator": "?", "expected_value": 1}]}
    )
    result = evaluate_measurement(measurement, MeasurementRecord(key="k", value=2.0))
    assert result.payload is not None and result.payload.outcome == "UNSET"
    assert result.live_outcome == "PASS"


def test_preset_outcome_is_kept() -> None:
    measurement = spec(
        {
            "validators": [
                {"operator": ">", "expected_value": 100, "outcome": "PASS"},
                {"expression": "visual check", "outcome": "FAIL"},
            ]
        }
    )
    result = evaluate_measurement(measurement, MeasurementRecord(key="k", value=1.0))
    assert result.payload is not None
    assert [v.outcome for v in result.payload.validators or []] == ["PASS", "FAIL"]
    assert result.check_failed and result.payload.outcome == "FAIL"


def test_undeclared_measurement_counts_without_validators() -> None:
    result = evaluate_measurement(None, MeasurementRecord(key="extra", value=[1, 2]))
    assert (result.name, result.live_outcome, result.check_failed) == ("extra", "PASS", False)
    assert result.payload is not None
    assert result.payload.model_dump(exclude_none=True) == {
        "name": "extra",
        "outcome": "UNSET",
        "measured_value": [1, 2],
    }


def test_none_value() -> None:
    measurement = spec(
        {"validators": [{"operator": "==", "expected_value": 1}, {"operator": "<", "expected_value": 1}]}
    )
    result = evaluate_measurement(measurement, MeasurementRecord(key="k", value=None))
    assert result.payload is not None
    assert [v.outcome for v in result.payload.validators or []] == ["FAIL", "UNSET"]
    assert result.live_outcome == "FAIL"


def test_no_value_is_live_unset() -> None:
    measurement = spec({"validators": [{"operator": "==", "expected_value": 1}]})
    result = evaluate_measurement(measurement, MeasurementRecord(key="k", has_value=False))
    assert result.live_outcome == "UNSET" and not result.check_failed


def test_aggregations_merge_yaml_and_code() -> None:
    measurement = spec(
        {
            "unit": "V",
            "validators": [{"operator": ">", "expected_value": 0}],
            "aggregations": [
                {"type": "mean", "unit": "V", "validators": [{"operator": "<", "expected_value": 5}]},
                {"type": "max", "validators": [{"operator": "<", "expected_value": 5}]},
                {"type": "min", "value": 0.5},
                {"type": "std", "validators": [{"operator": "<", "expected_value": 1}]},
            ],
        }
    )
    record = MeasurementRecord(key="v", value=3.0, aggregations={"mean": 3.0, "max": 7.0, "median": 3.1})
    result = evaluate_measurement(measurement, record)
    assert result.payload is not None
    aggregations = [a.model_dump(exclude_none=True) for a in result.payload.aggregations or []]
    assert aggregations == [
        {
            "type": "mean",
            "value": 3.0,
            "unit": "V",
            "outcome": "PASS",
            "validators": [{"operator": "<", "expected_value": 5, "outcome": "PASS"}],
        },
        {
            "type": "max",
            "value": 7.0,
            "outcome": "FAIL",
            "validators": [{"operator": "<", "expected_value": 5, "outcome": "FAIL"}],
        },
        {"type": "min", "value": 0.5, "outcome": "UNSET"},
        {  # Q11: validators but no value -> FAIL, without failing the measurement by itself
            "type": "std",
            "outcome": "FAIL",
            "validators": [{"operator": "<", "expected_value": 1, "outcome": "UNSET"}],
        },
        {"type": "median", "value": 3.1, "outcome": "UNSET"},
    ]
    # Q7: the payload outcome uses measurement-level validators only
    assert result.payload.outcome == "PASS"
    # the failing `max` validator fails the check and the live outcome
    assert (result.check_failed, result.live_outcome) == (True, "FAIL")


def test_aggregation_without_value_does_not_fail_check() -> None:
    measurement = spec({"aggregations": [{"type": "std", "validators": [{"operator": "<", "expected_value": 1}]}]})
    result = evaluate_measurement(measurement, MeasurementRecord(key="v", value=1.0))
    assert (result.check_failed, result.live_outcome) == (False, "PASS")


def curve_spec() -> MeasurementSpec:
    return spec(
        {
            "name": "Charge Curve",
            "title": "Charging",
            "x_axis": {"legend": "Time", "unit": "s"},
            "y_axis": [
                {"key": "voltage", "unit": "V", "validators": [{"operator": "==", "expected_value": [1.0, 2.0]}]},
                {"legend": "Battery Current", "unit": "A", "aggregations": [
                    {"type": "max", "validators": [{"operator": "<", "expected_value": 3}]}
                ]},
            ],
        }
    )


def test_multi_dimensional_payload() -> None:
    record = MeasurementRecord(
        key="charge_curve",
        value=None,
        x_axis=[0, 1],
        y_axis={
            "battery_current": YAxisRecord(data=[0.5, 0.7], aggregations={"max": 0.7}),
            "voltage": YAxisRecord(data=[1, 2]),
        },
    )
    result = evaluate_measurement(curve_spec(), record)
    assert result.payload is not None
    dumped = result.payload.model_dump(exclude_none=True)
    assert dumped["name"] == "charge_curve" and dumped["outcome"] == "UNSET"
    assert "measured_value" not in dumped and "units" not in dumped
    assert dumped["x_axis"] == {"data": [0.0, 1.0], "units": "s", "name": "Time"}
    assert dumped["y_axis"] == [
        {
            "data": [0.5, 0.7],
            "units": "A",
            "name": "Battery Current",
            "aggregations": [
                {
                    "type": "max",
                    "value": 0.7,
                    "outcome": "PASS",
                    "validators": [{"operator": "<", "expected_value": 3, "outcome": "PASS"}],
                }
            ],
        },
        {
            # the validator compares the whole recorded list: integers [1, 2] are not the
            # YAML floats [1.0, 2.0], so it fails (the payload data are floats either way)
            "data": [1.0, 2.0],
            "units": "V",
            "name": "Voltage",
            "validators": [{"operator": "==", "expected_value": [1.0, 2.0], "outcome": "FAIL"}],
        },
    ]
    assert (result.check_failed, result.live_outcome) == (True, "FAIL")


def test_y_axes_match_by_position_when_keys_differ() -> None:
    record = MeasurementRecord(
        key="charge_curve",
        x_axis=[0.0],
        y_axis={"v": YAxisRecord(data=[1.0]), "i": YAxisRecord(data=[9.0], aggregations={"max": 9.0})},
    )
    result = evaluate_measurement(curve_spec(), record)
    assert result.payload is not None and result.payload.y_axis is not None
    first, second = result.payload.y_axis
    assert (first.name, first.units) == ("Voltage", "V")
    assert (second.name, second.units) == ("Battery Current", "A")
    assert second.aggregations is not None and second.aggregations[0].outcome == "FAIL"
    assert result.check_failed


def test_non_numeric_axes() -> None:
    record = MeasurementRecord(
        key="charge_curve",
        x_axis=["t0", "t1"],
        y_axis={"voltage": YAxisRecord(data=[1.0, 2.0]), "battery_current": YAxisRecord(data=["a", None])},
    )
    result = evaluate_measurement(curve_spec(), record)
    assert result.payload is not None
    assert result.payload.x_axis is not None and result.payload.x_axis.data == []  # sent empty
    assert [axis.name for axis in result.payload.y_axis or []] == ["Voltage"]  # non-numeric y dropped


def test_undeclared_axes_get_title_case_legend() -> None:
    record = MeasurementRecord(key="scan", x_axis=[1.0, 2.0], y_axis={"gain_db": YAxisRecord(data=[3.0, 4.0])})
    result = evaluate_measurement(None, record)
    assert result.payload is not None and result.payload.y_axis is not None
    assert result.payload.y_axis[0].name == "Gain Db"
    assert result.payload.x_axis is not None and result.payload.x_axis.data == [1.0, 2.0]


def test_malformed_multi_dimensional_record_is_dropped() -> None:
    result = evaluate_measurement(curve_spec(), MeasurementRecord(key="charge_curve", x_axis=[1.0]))
    assert result.payload is None
