"""§9 answers: validation per component type, defaults, bind, and the identify form."""

from __future__ import annotations

from typing import Any

import pytest

from tofu_tui.procedure.answers import (
    identify_components,
    initial_values,
    validate_answers,
    validate_identify,
)
from tofu_tui.procedure.schema import UiComponentSpec, UnitSpec


def components(*items: dict[str, Any]) -> list[UiComponentSpec]:
    return [UiComponentSpec.model_validate(item) for item in items]


OPTIONS = [{"value": "green", "label": "Green"}, {"value": "red", "label": "Red"}, {"value": "blue"}]


def refused(comps: list[UiComponentSpec], values: dict[str, Any]) -> dict[str, str]:
    result = validate_answers(comps, values)
    assert not result.ok and result.values == {} and result.bound_measurements == {}
    return result.errors


def accepted(comps: list[UiComponentSpec], values: dict[str, Any]) -> dict[str, Any]:
    result = validate_answers(comps, values)
    assert result.ok, result.errors
    return result.values


# ---------------------------------------------------------------- switch


@pytest.mark.parametrize(("answer", "value"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_switch_accepts(answer: Any, value: bool) -> None:
    assert accepted(components({"type": "switch", "key": "ok"}), {"ok": answer}) == {"ok": value}


@pytest.mark.parametrize("answer", ["True", "yes", "1", 1, 0.0, ["true"]])
def test_switch_refuses(answer: Any) -> None:
    errors = refused(components({"type": "switch", "key": "ok", "label": "Looks OK"}), {"ok": answer})
    assert errors["ok"].startswith("Looks OK: expected true or false, got ")


# ---------------------------------------------------------------- numbers


def test_number_and_slider() -> None:
    comps = components(
        {"type": "number_input", "key": "v", "min": 0, "max": 5, "step": 0.5},
        {"type": "slider", "key": "s", "min": 10, "max": 20},
    )
    assert accepted(comps, {"v": "3.3", "s": 20}) == {"v": 3.3, "s": 20.0}
    assert accepted(comps, {"v": 0.1, "s": "10"}) == {"v": 0.1, "s": 10.0}  # step not enforced


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("abc", "Voltage: expected a number, got 'abc'"),
        ("nan", "Voltage: must be a finite number, got 'nan'"),
        ("inf", "Voltage: must be a finite number, got 'inf'"),
        (-1, "Voltage: must be at least 0 (got -1)"),
        ("5.5", "Voltage: must be at most 5 (got 5.5)"),
        (True, "Voltage: expected a number, got true (a bool)"),
        ([1], "Voltage: expected a number, got a list"),
    ],
)
def test_number_refused(answer: Any, message: str) -> None:
    comps = components({"type": "number_input", "key": "v", "label": "Voltage", "min": 0, "max": 5})
    assert refused(comps, {"v": answer}) == {"v": message}


def test_empty_number_is_no_value() -> None:
    comps = components({"type": "number_input", "key": "v", "bind": "measurements.v"})
    result = validate_answers(comps, {"v": "  "})
    assert result.ok and result.values == {} and result.bound_measurements == {}
    required = components({"type": "number_input", "key": "v", "required": True})
    assert refused(required, {"v": ""}) == {"v": "v: an answer is required"}


# ---------------------------------------------------------------- text


def test_text_trim_lengths_pattern() -> None:
    comps = components(
        {"type": "text_input", "key": "sn", "label": "Serial", "min_length": 3, "max_length": 6, "pattern": "[0-9]{2}"},
        {"type": "textarea", "key": "notes", "trim": False},
    )
    assert accepted(comps, {"sn": "  AB12  ", "notes": "  spaced  "}) == {"sn": "AB12", "notes": "  spaced  "}
    assert refused(comps, {"sn": "A1"}) == {"sn": "Serial: must be at least 3 characters (got 2)"}
    assert refused(comps, {"sn": "ABCDEFG1"}) == {"sn": "Serial: must be at most 6 characters (got 8)"}
    assert refused(comps, {"sn": "ABCD"}) == {"sn": "Serial: 'ABCD' does not match the pattern [0-9]{2}"}
    assert refused(comps, {"sn": True}) == {"sn": "Serial: expected text, got true (a bool)"}


def test_required_text() -> None:
    comps = components({"type": "text_input", "key": "who", "label": "Operator", "required": True})
    assert refused(comps, {}) == {"who": "Operator: an answer is required"}
    assert refused(comps, {"who": "   "}) == {"who": "Operator: an answer is required"}
    assert accepted(comps, {"who": "Ada"}) == {"who": "Ada"}


def test_optional_empty_text_skips_length_and_pattern() -> None:
    comps = components({"type": "text_input", "key": "x", "min_length": 3, "pattern": "^A"})
    assert accepted(comps, {"x": ""}) == {}


# ---------------------------------------------------------------- choices


def test_radio_and_select() -> None:
    comps = components({"type": "radio", "key": "led", "options": OPTIONS}, {"type": "select", "key": "c", "options": OPTIONS})
    assert accepted(comps, {"led": "green", "c": " red "}) == {"led": "green", "c": "red"}
    assert refused(comps, {"led": "Green"}) == {"led": "led: 'Green' is not one of the options: green, red, blue"}


def test_multiselect_and_checklist() -> None:
    comps = components(
        {"type": "multiselect", "key": "m", "options": OPTIONS},
        {"type": "checklist", "key": "c", "label": "Checks", "options": OPTIONS},
    )
    assert accepted(comps, {"m": ["red", "green", "red"], "c": "blue, green,blue"}) == {
        "m": ["red", "green"],
        "c": ["blue", "green"],
    }
    assert refused(comps, {"c": ["red", "pink", "teal"]}) == {
        "c": "Checks: 'pink', 'teal' are not among the options: green, red, blue"
    }
    assert refused(comps, {"c": {"red": True}}) == {"c": "Checks: expected a list of options, got a mapping"}


def test_required_multiselect_needs_one() -> None:
    comps = components({"type": "multiselect", "key": "m", "required": True, "options": OPTIONS})
    assert refused(comps, {"m": []}) == {"m": "m: an answer is required"}


# ---------------------------------------------------------------- unknown keys, several errors


def test_unknown_keys_rejected_and_all_errors_reported() -> None:
    comps = components(
        {"type": "number_input", "key": "v", "max": 1},
        {"type": "text", "key": "hint", "default_value": "Read the meter"},
        {"type": "switch", "key": "ok", "required": True},
    )
    assert refused(comps, {"v": 2, "volts": 1, "hint": "x"}) == {
        "volts": "volts: unknown field; this prompt has v, ok",
        "v": "v: must be at most 1 (got 2)",
        "ok": "ok: an answer is required",
    }


# ---------------------------------------------------------------- defaults and bind


def test_defaults_for_omitted_optional_inputs() -> None:
    comps = components(
        {"type": "text_input", "key": "t", "default_value": "abc"},
        {"type": "number_input", "key": "n", "default_value": 4},
        {"type": "switch", "key": "s", "default_value": True},
        {"type": "multiselect", "key": "m", "options": OPTIONS, "default_value": ["red", "blue"]},
        {"type": "text_input", "key": "joined", "default_value": ["a", "b"]},
        {"type": "text_input", "key": "empty", "default_value": ""},
        {"type": "text_input", "key": "given", "default_value": "unused"},
    )
    assert accepted(comps, {"given": "mine"}) == {
        "t": "abc",
        "n": 4.0,
        "s": True,
        "m": ["red", "blue"],
        "joined": "a,b",
        "given": "mine",
    }


def test_bind_measurements() -> None:
    comps = components(
        {"type": "number_input", "key": "v", "bind": "measurements.voltage"},
        {"type": "slider", "key": "s", "bind": "measurement.level"},
        {"type": "switch", "key": "ok", "bind": "measurements.ok"},
        {"type": "checklist", "key": "c", "options": OPTIONS, "bind": "measurements.checks"},
        {"type": "radio", "key": "led", "options": OPTIONS, "bind": "measurements.led_colour"},
        {"type": "text_input", "key": "note", "bind": "measurements.note"},
        {"type": "text_input", "key": "unbound"},
        {"type": "text_input", "key": "skipped", "bind": "measurements.skipped"},
    )
    result = validate_answers(
        comps, {"v": "3", "s": 7, "ok": "false", "c": ["green", "blue"], "led": "red", "note": 12, "unbound": "x"}
    )
    assert result.ok
    assert result.bound_measurements == {
        "voltage": 3.0,
        "level": 7.0,
        "ok": False,
        "checks": "green,blue",
        "led_colour": "red",
        "note": "12",
    }


def test_bind_unit_fields() -> None:
    comps = components(
        {"type": "text_input", "key": "sn", "bind": "unit.serial_number"},
        {"type": "text_input", "key": "rev", "bind": "unit.revision_number"},
        {"type": "text_input", "key": "board", "bind": "unit.sub_units.board"},
        {"type": "text_input", "key": "odd", "bind": "unit.colour"},
    )
    result = validate_answers(comps, {"sn": " SN9 ", "rev": "B", "board": "MB-1", "odd": "x"})
    assert result.ok
    assert result.unit_updates == {"serial_number": "SN9", "revision_number": "B", "sub_units": {"board": "MB-1"}}
    assert result.bound_measurements == {}


def test_initial_values() -> None:
    comps = components(
        {"type": "radio", "key": "r", "required": True, "options": OPTIONS},
        {"type": "select", "key": "optional", "options": OPTIONS},
        {"type": "select", "key": "img", "required": True, "options": [{"value": "a", "image": "a.png"}]},
        {"type": "switch", "key": "s"},
        {"type": "slider", "key": "sl", "min": 3, "max": 9},
        {"type": "text_input", "key": "t", "default_value": "hi"},
        {"type": "progress", "key": "p", "default_value": 40},
    )
    assert initial_values(comps) == {"r": "green", "s": False, "sl": 3.0, "t": "hi"}


# ---------------------------------------------------------------- identify


def unit(data: dict[str, Any] | None) -> UnitSpec | None:
    return None if data is None else UnitSpec.model_validate(data)


def test_identify_fields_in_order() -> None:
    spec = unit(
        {
            "batch_number": {"placeholder": "B-..."},
            "sub_units": [{"label": "Main Board"}, {"label": "PSU", "key": "psu"}],
            "metadata": {"station_note": {}, "lot": {"pattern": "^L"}},
        }
    )
    fields = identify_components(spec)
    assert [(f.key, f.required) for f in fields] == [
        ("serial_number", True),
        ("part_number", True),
        ("batch_number", False),
        ("sub_unit:main_board", True),
        ("sub_unit:psu", True),
        ("metadata:lot", False),
        ("metadata:station_note", False),
    ]
    assert fields[2].placeholder == "B-..."
    assert [f.key for f in identify_components(None)] == ["serial_number", "part_number"]


def test_identify_accepts_and_builds_unit() -> None:
    spec = unit(
        {
            "serial_number": {"pattern": "^SN-"},
            "revision_number": {},
            "sub_units": [{"label": "Board"}],
            "metadata": {"lot": {}},
        }
    )
    result = validate_identify(
        spec,
        {"serial_number": " SN-1 ", "part_number": "PN", "revision_number": "  ", "sub_unit:board": "B1", "metadata:lot": "L7"},
    )
    assert result.ok, result.errors
    assert result.unit_updates == {
        "serial_number": "SN-1",
        "part_number": "PN",
        "revision_number": None,  # blank answers are dropped
        "batch_number": None,
        "sub_units": {"board": "B1"},
        "metadata": {"lot": "L7"},
    }


def test_identify_refusals() -> None:
    spec = unit(
        {
            "serial_number": {"min_length": 4, "max_length": 6, "pattern": "[0-9]$"},
            "sub_units": [{"label": "Board"}],
        }
    )
    result = validate_identify(spec, {"serial_number": "ééé1", "sub_unit:psu": "X", "colour": "red"})
    assert not result.ok
    assert result.errors == {
        "sub_unit:psu": "sub_unit:psu: this procedure declares no sub-unit 'psu'",
        "colour": "colour: unknown field; the identify form has part_number, serial_number, sub_unit:board",
        "serial_number": "Serial number: must be at most 6 bytes (got 7)",  # lengths count bytes
        "part_number": "Part number: an answer is required",
        "sub_unit:board": "Board serial number: an answer is required",
    }
    short = validate_identify(spec, {"serial_number": "ab1", "part_number": "P", "sub_unit:board": "b"})
    assert short.errors == {"serial_number": "Serial number: must be at least 4 bytes (got 3)"}
    pattern = validate_identify(spec, {"serial_number": "abcd", "part_number": "P", "sub_unit:board": "b"})
    assert pattern.errors == {"serial_number": "Serial number: 'abcd' does not match the pattern [0-9]$"}


def test_auto_identify_from_defaults() -> None:
    spec = unit(
        {
            "auto_identify": True,
            "serial_number": {"default_value": "SN-0"},
            "part_number": {"default_value": "PN-0"},
            "sub_units": [{"label": "Board", "serial_number": {"default_value": "B-0"}}],
        }
    )
    result = validate_identify(spec, {})
    assert result.ok
    assert result.unit_updates["serial_number"] == "SN-0"
    assert result.unit_updates["sub_units"] == {"board": "B-0"}
