"""Operator answers (procedure-format §9): validation, defaults, `bind`, the identify form."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tofu_tui.procedure.schema import UiComponentSpec, UnitSpec


class AnswerResult(BaseModel):
    ok: bool
    errors: dict[str, str] = Field(default_factory=dict)  # component key -> why refused
    values: dict[str, Any] = Field(default_factory=dict)  # normalized, defaults applied
    bound_measurements: dict[str, Any] = Field(default_factory=dict)  # measurement key -> value
    unit_updates: dict[str, Any] = Field(default_factory=dict)  # unit field or "sub_units.<key>" -> value


def validate_answers(components: list[UiComponentSpec], values: dict[str, Any]) -> AnswerResult:
    raise NotImplementedError  # stub: implemented next


def identify_components(unit: UnitSpec | None) -> list[UiComponentSpec]:
    raise NotImplementedError  # stub: implemented next


def validate_identify(unit: UnitSpec | None, values: dict[str, Any]) -> AnswerResult:
    raise NotImplementedError  # stub: implemented next
