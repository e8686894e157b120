"""Pydantic models of `procedure.yaml` (procedure-format §2).

Parsing rules live here: types, limits, enums, trimming, aliases, derived keys and
defaults. Checks that span several entries (DAG, duplicate keys, pre-flight) live in
`load.py`, which also turns validation errors into `file:line: field: problem` lines.

Models are validated with the context `{"yaml": True}` when they come from a file: then
the engine-only names (`timeout_ms`, `stage`, ...) are rejected like any unknown field.
Code (tests, other engine modules) may build them with either name.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tofu_tui.procedure.durations import MAX_TIMEOUT_MS, DurationError, parse_duration
from tofu_tui.procedure.identifiers import is_valid_key, to_identifier

INPUT_TYPES = (
    "text_input",
    "number_input",
    "switch",
    "textarea",
    "radio",
    "select",
    "multiselect",
    "checklist",
    "slider",
)
DISPLAY_TYPES = ("text", "image", "progress")
OPTION_TYPES = ("radio", "select", "multiselect", "checklist")
SHELLS = ("bash", "sh", "zsh", "powershell", "pwsh", "cmd")
METADATA_KEY = re.compile(r"[A-Za-z0-9_.:+-]{1,40}")
MAX_METADATA_KEYS = 50

ComponentType = Literal[
    "text_input",
    "number_input",
    "switch",
    "textarea",
    "radio",
    "select",
    "multiselect",
    "checklist",
    "slider",
    "text",
    "image",
    "progress",
]
Scope = Literal["slot", "execution"]
PlugScope = Literal["slot", "execution", "station"]
Stage = Literal["setup", "main", "teardown"]
NextAction = Literal["continue", "stop", "retry"]


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error about `field` of the model being validated (load.py appends it to the path)."""
    return PydanticCustomError("tofu_field", "{message}", {"field": field, "message": message})


def _error(message: str) -> PydanticCustomError:
    """A plain problem with the current value; the message is shown as is."""
    return PydanticCustomError("tofu", "{message}", {"message": message})


def _lax_text(value: Any) -> Any:
    """Numbers written unquoted (`version: 2`, `value: 1`) are taken as their text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _duration(value: Any) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise _error(str(exc)) from None


def _scope(value: Any) -> Any:
    aliases = {"slot": "slot", "each": "slot", "execution": "execution", "all": "execution", "run": "execution"}
    if isinstance(value, str) and value in aliases:
        return aliases[value]
    if value == "station":
        return value
    raise _error(f"must be one of slot, each, execution, all, run, station; got {value!r}")


Name100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name50 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Label200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text50 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Text1000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
Desc = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50_000)]
Unit50 = Text50
Raw50 = Annotated[str, StringConstraints(max_length=50)]
Raw200 = Annotated[str, StringConstraints(max_length=200)]
Raw500 = Annotated[str, StringConstraints(max_length=500)]
Raw4096 = Annotated[str, StringConstraints(max_length=4096)]
Command = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
OptionText = Annotated[str, BeforeValidator(_lax_text), StringConstraints(strip_whitespace=True, max_length=200)]
Duration = Annotated[int, BeforeValidator(_duration)]


def _check_key(value: str | None, source: str | None, source_field: str, max_length: int) -> str:
    """The explicit key, or one derived from `source`; raises a field error on `key`."""
    if value is None:
        if source is None:
            raise field_error("key", f"no key: set `key:` or `{source_field}:`")
        derived = to_identifier(source)
        if not derived:
            raise field_error(
                "key", f"cannot derive a key from {source_field} {source!r}; set `key:` explicitly"
            )
        value = derived
    if not value:
        raise field_error("key", "must not be empty")
    if len(value) > max_length:
        raise field_error("key", f"must be at most {max_length} characters (got {len(value)})")
    if not is_valid_key(value):
        raise field_error(
            "key",
            f"{value!r} is not a valid key: use letters, digits and _ and do not start with a digit",
        )
    return value


class _Spec(BaseModel):
    """Unknown keys rejected, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, defer_build=True)

    # Python-side names that a YAML file may not use.
    _engine_only: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _reject_engine_only(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get("yaml"):
            for name in cls._engine_only:
                if name in data:
                    raise field_error(name, "unknown field")
        return data


# ---------------------------------------------------------------- measurements


class ValidatorSpec(_Spec):
    operator: str | None = None
    expected_value: Any = None
    expression: str | None = None
    outcome: Literal["PASS", "FAIL"] | None = None

    @field_validator("expected_value")
    @classmethod
    def _json_value(cls, value: Any) -> Any:
        _check_json(value)
        return value


def _check_json(value: Any) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"mapping keys must be strings, got {key!r}")
            _check_json(item)
        return
    raise ValueError(f"must be null, a bool, a number, a string, a list or a mapping; got {value!r}")


class AggregationSpec(_Spec):
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    value: Any = None
    unit: Unit50 | None = None
    outcome: Literal["PASS", "FAIL", "UNSET"] | None = None
    validators: list[ValidatorSpec] = Field(default_factory=list)

    @field_validator("value")
    @classmethod
    def _value_type(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str | dict):
            if isinstance(value, dict):
                _check_json(value)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("must be a finite number")
            return value
        raise ValueError(f"must be a number, a string, a bool or a mapping; got {value!r}")


class AxisSpec(_Spec):
    key: str | None = None
    legend: Text200 | None = None
    unit: Unit50 | None = None
    description: Desc | None = None
    data: list[Any] | None = None
    validators: list[ValidatorSpec] = Field(default_factory=list)
    aggregations: list[AggregationSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _derive(self) -> AxisSpec:
        if self.key is None and self.legend:
            self.key = to_identifier(self.legend) or None
        if self.key is not None and not is_valid_key(self.key):
            raise field_error("key", f"{self.key!r} is not a valid key")
        if not self.legend and self.key:
            self.legend = self.key.replace("_", " ").strip().title()
        return self


class MeasurementSpec(_Spec):
    name: Name100
    key: str = None  # type: ignore[assignment]  # derived from name when absent
    unit: Unit50 | None = None
    description: Desc | None = None
    title: Text200 | None = None
    validators: list[ValidatorSpec] = Field(default_factory=list)
    aggregations: list[AggregationSpec] = Field(default_factory=list)
    x_axis: AxisSpec | None = None
    y_axis: list[AxisSpec] | None = None

    @model_validator(mode="after")
    def _derive(self) -> MeasurementSpec:
        self.key = _check_key(self.key, self.name, "name", 100)
        return self

    @property
    def multi_dimensional(self) -> bool:
        return self.x_axis is not None or bool(self.y_axis)


# ---------------------------------------------------------------- UI


class OptionSpec(_Spec):
    value: OptionText
    label: OptionText | None = None
    image: Raw500 | None = None

    @model_validator(mode="after")
    def _label(self) -> OptionSpec:
        if self.label is None:
            self.label = self.value
        return self


def _default_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _error("must be a finite number")
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise _error(f"must be a bool, a number, a string or a list of strings; got {value!r}")


_WIDTH = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")


class UiComponentSpec(_Spec):
    type: ComponentType
    key: str = None  # type: ignore[assignment]  # derived from label, else the type name
    label: Text200 | None = None
    placeholder: Text1000 | None = None
    description: Text1000 | None = None
    required: bool = False
    default_value: Annotated[Any, BeforeValidator(_default_value)] = None
    bind: Raw200 | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    pattern: Raw500 | None = None
    trim: bool = True
    prefix: Raw50 | None = None
    suffix: Raw50 | None = None
    rows: float | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    columns: float | None = None
    options: list[OptionSpec] | None = None
    width: str | None = None
    height: Raw50 | None = None
    aspect: Literal["16/9", "4/3", "3/4", "2/3", "9/16", "square", "auto"] | None = None
    fit: Literal["contain", "cover", "fill"] | None = None
    size: Literal["xs", "sm", "base", "lg", "xl", "2xl", "3xl", "4xl"] | None = None
    color: (
        Literal[
            "default", "zinc", "red", "orange", "yellow", "green", "lime", "sky", "blue",
            "violet", "purple", "pink",
        ]
        | None
    ) = None
    font: Literal["default", "monospace"] | None = None

    @field_validator("width")
    @classmethod
    def _width(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _WIDTH.fullmatch(value.strip())
        if not match or not 0 < float(match.group(1)) <= 100:
            raise _error(f"must be a percentage N% with 0 < N <= 100, got {value!r}")
        return value.strip()

    @model_validator(mode="after")
    def _derive(self) -> UiComponentSpec:
        if self.key is None and not self.label:
            self.key = self.type.replace("_", "")
        self.key = _check_key(self.key, self.label, "label", 100)
        if self.type in OPTION_TYPES and not self.options:
            raise field_error("options", f"a {self.type} needs a non-empty `options` list")
        if self.options and any(option.image for option in self.options) and len(self.options) > 12:
            raise field_error(
                "options", f"at most 12 options when any has an image (got {len(self.options)})"
            )
        return self

    @property
    def is_input(self) -> bool:
        return self.type in INPUT_TYPES


class UiSpec(_Spec):
    components: list[UiComponentSpec] = Field(default_factory=list)
    requires_input: bool = False

    @property
    def has_input(self) -> bool:
        return any(component.is_input for component in self.components)

    @property
    def waits(self) -> bool:
        """§2.5: a prompt waits if it has an input, or when `requires_input: true`."""
        return self.has_input or self.requires_input


# ---------------------------------------------------------------- phases


class ExecutableSpec(_Spec):
    command: Command
    shell: Literal["bash", "sh", "zsh", "powershell", "pwsh", "cmd"] | None = None
    working_directory: Raw4096 | None = None


class RetrySpec(_Spec):
    _engine_only = ("delay_ms",)
    limit: int = Field(ge=1, le=10)
    delay_ms: Duration | None = Field(default=None, alias="delay")


class ThenSpec(_Spec):
    _engine_only = ("pass_",)
    pass_: NextAction | None = Field(default=None, alias="pass")
    fail: NextAction | None = None
    error: NextAction | None = None
    timeout: NextAction | None = None


class PhaseSpec(_Spec):
    _engine_only = ("timeout_ms", "stage")
    name: Name100
    key: str = None  # type: ignore[assignment]  # derived from name when absent
    python: str | None = None
    executable: ExecutableSpec | None = None
    description: Text1000 | None = None
    enabled: bool = True
    result: Raw50 | None = None
    depends_on: list[str] = Field(default_factory=list, max_length=100)
    timeout_ms: Duration | None = Field(default=None, alias="timeout")
    retry: RetrySpec | None = None
    then: ThenSpec | None = None
    scope: Annotated[Literal["slot", "execution", "station"], BeforeValidator(_scope)] = "slot"
    measurements: list[MeasurementSpec] = Field(default_factory=list)
    ui: UiSpec | None = None
    stage: Stage = "main"

    @field_validator("timeout_ms")
    @classmethod
    def _timeout_range(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_TIMEOUT_MS:
            raise ValueError(f"must be at most 24h (got {value} ms)")
        return value

    @field_validator("scope")
    @classmethod
    def _no_station(cls, value: str) -> str:
        if value == "station":
            raise ValueError("`scope: station` is only for plugs; a phase runs per slot or once per execution")
        return value

    @model_validator(mode="after")
    def _derive(self) -> PhaseSpec:
        self.key = _check_key(self.key, self.name, "name", 100)
        if self.python is not None and self.executable is not None:
            raise field_error(
                "executable", "a phase has either `python` or `executable`, not both"
            )
        return self

    @property
    def removed(self) -> bool:
        """`enabled: false` or `result: skip`: not run, not uploaded."""
        return not self.enabled or self.result == "skip"

    @property
    def is_ui_only(self) -> bool:
        return self.python is None and self.executable is None

    @property
    def execution_wide(self) -> bool:
        return self.stage != "main" and self.scope == "execution"


# ---------------------------------------------------------------- execution, unit, plugs


class SlotSpec(_Spec):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True, defer_build=True)
    name: Annotated[Name50, BeforeValidator(_lax_text)]
    key: str = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _derive(self) -> SlotSpec:
        if self.key is None:
            self.key = to_identifier(self.name)
        if not 1 <= len(self.key) <= 50:
            raise field_error("key", f"must be 1 to 50 characters (got {len(self.key)})")
        return self


def _default_slots() -> list[SlotSpec]:
    return [SlotSpec(name="default", key="default")]


class ExecutionSpec(_Spec):
    strategy: Literal["phase_first", "slot_first"] = "phase_first"
    workers: int = Field(default=8, ge=1, le=256)
    on_first_failure: Literal["stop", "continue"] = "stop"
    slots: list[SlotSpec] = Field(default_factory=_default_slots)

    @field_validator("slots")
    @classmethod
    def _at_least_one(cls, value: list[SlotSpec]) -> list[SlotSpec]:
        return value or _default_slots()


class UnitFieldSpec(_Spec):
    default_value: Annotated[str, BeforeValidator(_lax_text)] | None = None
    placeholder: Text200 | None = None
    description: Text1000 | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    pattern: Raw500 | None = None

    @property
    def has_default(self) -> bool:
        return bool(self.default_value and self.default_value.strip())


class SubUnitSpec(_Spec):
    label: Label200
    key: str = None  # type: ignore[assignment]
    serial_number: UnitFieldSpec | None = None

    @model_validator(mode="after")
    def _derive(self) -> SubUnitSpec:
        self.key = _check_key(self.key, self.label, "label", 100)
        return self


class UnitSpec(_Spec):
    auto_identify: bool = False
    serial_number: UnitFieldSpec | None = None
    part_number: UnitFieldSpec | None = None
    revision_number: UnitFieldSpec | None = None
    batch_number: UnitFieldSpec | None = None
    sub_units: list[SubUnitSpec] | None = Field(default=None, min_length=1)
    metadata: dict[str, UnitFieldSpec] | None = None

    @field_validator("sub_units")
    @classmethod
    def _unique_sub_units(cls, value: list[SubUnitSpec] | None) -> list[SubUnitSpec] | None:
        seen: dict[str, str] = {}
        for sub_unit in value or []:
            folded = sub_unit.key.lower()
            if folded in seen:
                raise ValueError(
                    f"sub-unit keys must be unique ignoring case: {sub_unit.key!r} repeats {seen[folded]!r}"
                )
            seen[folded] = sub_unit.key
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, value: dict[str, UnitFieldSpec] | None) -> dict[str, UnitFieldSpec] | None:
        if value is None:
            return value
        for key in value:
            if not METADATA_KEY.fullmatch(key):
                raise ValueError(
                    f"metadata key {key!r} must be 1 to 40 characters from A-Z a-z 0-9 _ . : + -"
                )
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys (got {len(value)})")
        return value

    @model_validator(mode="after")
    def _auto_identify(self) -> UnitSpec:
        if not self.auto_identify:
            return self
        missing = []
        if not (self.serial_number and self.serial_number.has_default):
            missing.append("serial_number.default_value")
        if not (self.part_number and self.part_number.has_default):
            missing.append("part_number.default_value")
        for sub_unit in self.sub_units or []:
            if not (sub_unit.serial_number and sub_unit.serial_number.has_default):
                missing.append(f"sub_units[{sub_unit.key}].serial_number.default_value")
        if missing:
            raise field_error(
                "auto_identify",
                "auto_identify needs a non-blank default for " + ", ".join(missing),
            )
        return self


class PlugSpec(_Spec):
    name: Name100
    key: str = None  # type: ignore[assignment]
    python: str
    scope: Annotated[PlugScope, BeforeValidator(_scope)] = "slot"
    config: dict[str, Any] = Field(default_factory=dict)
    description: Desc | None = None

    @model_validator(mode="after")
    def _derive(self) -> PlugSpec:
        self.key = _check_key(self.key, self.name, "name", 100)
        return self


class ProcedureSpec(_Spec):
    id: Any = None  # ignored (§1)
    name: Name100
    version: Annotated[Text50, BeforeValidator(_lax_text)] = ""
    description: Desc | None = None
    setup: list[PhaseSpec] = Field(default_factory=list)
    main: list[PhaseSpec] = Field(default_factory=list, validate_default=True)
    teardown: list[PhaseSpec] = Field(default_factory=list)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    execution_declared: bool = True
    unit: UnitSpec | None = None
    plugs: list[PlugSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _execution_block(cls, data: Any, info: ValidationInfo) -> Any:
        # §2.1: with no `execution` block at all the pool has 4 workers, not 8.
        if not isinstance(data, dict):
            return data
        if info.context and info.context.get("yaml") and "execution_declared" in data:
            raise field_error("execution_declared", "unknown field")
        if data.get("execution") is None:
            data = {key: value for key, value in data.items() if key != "execution"}
            data["execution"] = {"workers": 4}
            data["execution_declared"] = False
        return data

    @field_validator("main")
    @classmethod
    def _main_not_empty(cls, value: list[PhaseSpec]) -> list[PhaseSpec]:
        if not value:
            raise ValueError("`main` must list at least one phase")
        return value

    @model_validator(mode="after")
    def _stages(self) -> ProcedureSpec:
        for stage in ("setup", "main", "teardown"):
            for phase in getattr(self, stage):
                phase.stage = stage
                if stage == "main":
                    phase.scope = "slot"  # scope is ignored on main (§2.2)
        return self

    def phases(self) -> list[PhaseSpec]:
        """Every phase in file order: setup, main, teardown."""
        return [*self.setup, *self.main, *self.teardown]

    def phase(self, key: str) -> PhaseSpec | None:
        """The main phase with this key, else the first setup/teardown phase with it."""
        for phase in (*self.main, *self.setup, *self.teardown):
            if phase.key == key:
                return phase
        return None
