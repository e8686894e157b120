"""Operator answers (procedure-format §9): validation, defaults, `bind`, the identify form.

Every front end (ui.json, stdin `ui_response`, the TUI, the dashboard) hands its answer
to these functions, so an answer means the same thing whichever surface sent it. Each
refusal names the field and says why, because an operator reads it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from tofu_tui.procedure.evaluate import re2_search
from tofu_tui.procedure.schema import INPUT_TYPES, UiComponentSpec, UnitFieldSpec, UnitSpec

UNIT_FIELDS = ("serial_number", "part_number", "revision_number", "batch_number")
_NUMBER_TYPES = ("number_input", "slider")
_CHOICE_TYPES = ("radio", "select")
_MULTI_TYPES = ("multiselect", "checklist")
_TEXT_TYPES = ("text_input", "textarea")


class AnswerResult(BaseModel):
    ok: bool
    errors: dict[str, str] = Field(default_factory=dict)  # component key -> why refused
    values: dict[str, Any] = Field(default_factory=dict)  # normalized, defaults applied
    bound_measurements: dict[str, Any] = Field(default_factory=dict)  # measurement key -> value
    # unit field -> value; "sub_units" -> {key: serial}; "metadata" -> {key: value} (identify)
    unit_updates: dict[str, Any] = Field(default_factory=dict)


class _Refused(ValueError):
    pass


_MISSING = object()


def _label(component: UiComponentSpec) -> str:
    return component.label or component.key


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Refused(f"expected text, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a bool)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _number(component: UiComponentSpec, value: Any) -> float | None:
    if isinstance(value, bool):
        raise _Refused(f"expected a number, got {_describe(value)}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise _Refused(f"expected a number, got {value!r}") from None
    else:
        raise _Refused(f"expected a number, got {_describe(value)}")
    if not math.isfinite(number):
        raise _Refused(f"must be a finite number, got {value!r}")
    if component.min is not None and number < component.min:
        raise _Refused(f"must be at least {_fmt(component.min)} (got {_fmt(number)})")
    if component.max is not None and number > component.max:
        raise _Refused(f"must be at most {_fmt(component.max)} (got {_fmt(number)})")
    return number


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _Refused(f"expected true or false, got {_describe(value)}")


def _text(component: UiComponentSpec, value: Any) -> str | None:
    text = _as_text(value)
    if component.trim:
        text = text.strip()
    if not text:
        return None
    if component.min_length is not None and len(text) < component.min_length:
        raise _Refused(f"must be at least {component.min_length} characters (got {len(text)})")
    if component.max_length is not None and len(text) > component.max_length:
        raise _Refused(f"must be at most {component.max_length} characters (got {len(text)})")
    if component.pattern and re2_search(component.pattern, text) is False:
        raise _Refused(f"{text!r} does not match the pattern {component.pattern}")
    return text


def _option_values(component: UiComponentSpec) -> list[str]:
    return [option.value for option in component.options or []]


def _choice(component: UiComponentSpec, value: Any) -> str | None:
    text = _as_text(value).strip()
    if not text:
        return None
    allowed = _option_values(component)
    if text not in allowed:
        raise _Refused(f"{text!r} is not one of the options: {', '.join(allowed)}")
    return text


def _multi(component: UiComponentSpec, value: Any) -> list[str] | None:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")] if value.strip() else []
    elif isinstance(value, list):
        items = [_as_text(item).strip() for item in value]
    else:
        raise _Refused(f"expected a list of options, got {_describe(value)}")
    chosen = list(dict.fromkeys(item for item in items if item))
    allowed = _option_values(component)
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise _Refused(
            f"{', '.join(repr(item) for item in unknown)} {'is' if len(unknown) == 1 else 'are'} not"
            f" among the options: {', '.join(allowed)}"
        )
    return chosen or None


def normalize_answer(component: UiComponentSpec, value: Any) -> Any:
    """The typed value of one input answer, None for 'no value'; raises ValueError with the reason."""
    if value is None:
        return None
    if component.type == "switch":
        return _switch(value)
    if component.type in _NUMBER_TYPES:
        return _number(component, value)
    if component.type in _CHOICE_TYPES:
        return _choice(component, value)
    if component.type in _MULTI_TYPES:
        return _multi(component, value)
    return _text(component, value)


def _default(component: UiComponentSpec) -> Any:
    """An omitted optional input's default (§9); None when the default is empty."""
    default = component.default_value
    if default is None or default == "" or default == []:
        return None
    if isinstance(default, list) and component.type not in _MULTI_TYPES:
        default = ",".join(default)
    try:
        return normalize_answer(component, default)
    except ValueError:
        return None  # a default that does not fit its component gives no value


def bound_value(component: UiComponentSpec, value: Any) -> Any:
    """The measurement a bound answer records (§9), or None to record nothing."""
    if value is None:
        return None
    if component.type in _NUMBER_TYPES:
        return float(value)
    if component.type == "switch":
        return bool(value)
    if component.type in _MULTI_TYPES:
        return ",".join(value)
    return str(value)


def _apply_bind(component: UiComponentSpec, value: Any, result: AnswerResult) -> None:
    bind = (component.bind or "").strip()
    if not bind or value is None:
        return
    head, _, rest = bind.partition(".")
    if head in ("measurements", "measurement") and rest:
        bound = bound_value(component, value)
        if bound is not None:
            result.bound_measurements[rest] = bound
    elif head == "unit" and rest:
        text = ",".join(value) if isinstance(value, list) else (
            str(value).lower() if isinstance(value, bool) else _fmt(value) if isinstance(value, float) else str(value)
        )
        if rest in UNIT_FIELDS:
            result.unit_updates[rest] = text
        elif rest.startswith("sub_units.") and rest.removeprefix("sub_units."):
            result.unit_updates.setdefault("sub_units", {})[rest.removeprefix("sub_units.")] = text


def validate_answers(components: list[UiComponentSpec], values: dict[str, Any]) -> AnswerResult:
    """Check an answer to a phase prompt; `ok` is False with a reason per refused field."""
    result = AnswerResult(ok=True)
    inputs = [component for component in components if component.type in INPUT_TYPES]
    known = {component.key for component in components}
    for key in values:
        if key not in known:
            names = ", ".join(component.key for component in inputs) or "no inputs"
            result.errors[key] = f"{key}: unknown field; this prompt has {names}"
    for component in inputs:
        raw = values.get(component.key, _MISSING)
        try:
            value = None if raw is _MISSING else normalize_answer(component, raw)
        except ValueError as exc:
            result.errors[component.key] = f"{_label(component)}: {exc}"
            continue
        if value is None and raw is _MISSING and not component.required:
            value = _default(component)
        if value is None:
            if component.required:
                result.errors[component.key] = f"{_label(component)}: an answer is required"
            continue
        result.values[component.key] = value
    if result.errors:
        return AnswerResult(ok=False, errors=result.errors)
    for component in inputs:
        _apply_bind(component, result.values.get(component.key), result)
    return result


def initial_values(components: list[UiComponentSpec]) -> dict[str, Any]:
    """What an interactive surface shows before the operator touches anything (§9)."""
    initial: dict[str, Any] = {}
    for component in components:
        if component.type not in INPUT_TYPES:
            continue
        default = _default(component)
        if default is not None:
            initial[component.key] = default
        elif component.type == "switch":
            initial[component.key] = False
        elif component.type == "slider" and component.min is not None:
            initial[component.key] = component.min
        elif (
            component.type in _CHOICE_TYPES
            and component.required
            and component.options
            and not any(option.image for option in component.options)
        ):
            initial[component.key] = component.options[0].value
    return initial


# ---------------------------------------------------------------- identify (§9 Identify)

_FIELD_LABELS = {
    "serial_number": "Serial number",
    "part_number": "Part number",
    "revision_number": "Revision",
    "batch_number": "Batch",
}


def _form_field(key: str, label: str, config: UnitFieldSpec | None, required: bool) -> UiComponentSpec:
    # Identify keys (`sub_unit:board`, `metadata:lot`) are not identifiers, so this
    # component is built without the YAML key rule.
    config = config or UnitFieldSpec()
    return UiComponentSpec.model_construct(
        type="text_input",
        key=key,
        label=label,
        required=required,
        default_value=config.default_value,
        placeholder=config.placeholder,
        description=config.description,
        min_length=config.min_length,
        max_length=config.max_length,
        pattern=config.pattern,
    )


def identify_components(unit: UnitSpec | None) -> list[UiComponentSpec]:
    """The identify form: serial and part (required), revision and batch if declared,
    each sub-unit serial (required), then metadata fields (optional, alphabetical)."""
    fields = [
        _form_field("serial_number", _FIELD_LABELS["serial_number"], unit.serial_number if unit else None, True),
        _form_field("part_number", _FIELD_LABELS["part_number"], unit.part_number if unit else None, True),
    ]
    for name in ("revision_number", "batch_number"):
        config = getattr(unit, name) if unit else None
        if config is not None:
            fields.append(_form_field(name, _FIELD_LABELS[name], config, False))
    for sub_unit in (unit.sub_units or []) if unit else []:
        fields.append(
            _form_field(f"sub_unit:{sub_unit.key}", f"{sub_unit.label} serial number", sub_unit.serial_number, True)
        )
    for key in sorted((unit.metadata or {}) if unit else {}):
        assert unit is not None and unit.metadata is not None
        fields.append(_form_field(f"metadata:{key}", key, unit.metadata[key], False))
    return fields


def _identify_text(component: UiComponentSpec, value: Any) -> str | None:
    text = _as_text(value).strip()
    if not text:
        return None  # blank answers are dropped
    size = len(text.encode("utf-8"))  # identify lengths count bytes
    if component.min_length is not None and size < component.min_length:
        raise _Refused(f"must be at least {component.min_length} bytes (got {size})")
    if component.max_length is not None and size > component.max_length:
        raise _Refused(f"must be at most {component.max_length} bytes (got {size})")
    if component.pattern and re2_search(component.pattern, text) is False:
        raise _Refused(f"{text!r} does not match the pattern {component.pattern}")
    return text


def validate_identify(unit: UnitSpec | None, values: dict[str, Any]) -> AnswerResult:
    """Check an identify answer. Omitted fields take their `default_value`, so
    `validate_identify(unit, {})` gives the `auto_identify` unit. `unit_updates` is the
    unit: {serial_number, part_number, revision_number, batch_number, sub_units, metadata}."""
    components = identify_components(unit)
    result = AnswerResult(ok=True)
    known = {component.key for component in components}
    for key in values:
        if key not in known:
            if key.startswith("sub_unit:"):
                result.errors[key] = f"{key}: this procedure declares no sub-unit {key.removeprefix('sub_unit:')!r}"
            else:
                result.errors[key] = f"{key}: unknown field; the identify form has {', '.join(sorted(known))}"
    for component in components:
        raw = values.get(component.key, _MISSING)
        if raw is _MISSING or _is_blank(raw):
            raw = component.default_value
        try:
            value = None if raw is None else _identify_text(component, raw)
        except ValueError as exc:
            result.errors[component.key] = f"{_label(component)}: {exc}"
            continue
        if value is None:
            if component.required:
                result.errors[component.key] = f"{_label(component)}: an answer is required"
            continue
        result.values[component.key] = value
    if result.errors:
        return AnswerResult(ok=False, errors=result.errors)
    updates: dict[str, Any] = {name: result.values.get(name) for name in UNIT_FIELDS}
    updates["sub_units"] = {
        key.removeprefix("sub_unit:"): value for key, value in result.values.items() if key.startswith("sub_unit:")
    }
    updates["metadata"] = {
        key.removeprefix("metadata:"): value for key, value in result.values.items() if key.startswith("metadata:")
    }
    result.unit_updates = updates
    return result
