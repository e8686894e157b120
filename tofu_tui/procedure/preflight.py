"""Pre-flight (§3 row 11): every reference checked before anything starts, all problems at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tofu_tui.procedure.references import (
    PythonReference,
    ReferenceError_,
    colon_hint,
    parse_reference,
)
from tofu_tui.procedure.schema import ProcedureSpec

Loc = tuple[Any, ...]


def preflight(
    spec: ProcedureSpec, directory: Path, resolved: dict[str, PythonReference] | None = None
) -> list[tuple[Loc, str]]:
    """(location in the YAML, problem) for every bad plug or phase reference. Phase
    references that parse are put in `resolved` (by their text) for the run to reuse."""
    problems: list[tuple[Loc, str]] = []
    for index, plug in enumerate(spec.plugs):
        loc: Loc = ("plugs", index, "python")
        try:
            ref = parse_reference(plug.python, directory, "plug")
        except ReferenceError_ as exc:
            problems.append((loc, str(exc)))
            continue
        if not ref.file.is_file():
            problems.append((loc, _missing(plug.python, ref.file, directory, "plug")))
        elif not ref.callable_valid:
            problems.append(
                (loc, f"{ref.callable!r} (from the file name) is not a valid class name; write `{plug.python}:ClassName`")
            )
    for stage in ("setup", "main", "teardown"):
        for index, phase in enumerate(getattr(spec, stage)):
            if phase.removed or phase.python is None:
                continue
            loc = (stage, index, "python")
            try:
                ref = parse_reference(phase.python, directory, "phase")
            except ReferenceError_ as exc:
                problems.append((loc, str(exc)))
                continue
            if resolved is not None:
                resolved[phase.python] = ref
            if not ref.callable_valid:
                problems.append(
                    (loc, f"{ref.callable!r} is not a valid function name; write `{phase.python}:function_name`")
                )
            elif ref.tree_bound and not ref.file.is_file():
                problems.append((loc, _missing(phase.python, ref.file, directory, "phase")))
    return problems


def _missing(text: str, file: Path, directory: Path, kind: str) -> str:
    try:
        shown = str(file.relative_to(directory))
    except ValueError:
        shown = str(file)
    message = f"{kind} file {shown} not found"
    hint = colon_hint(text, directory)
    if hint is not None:
        message += f"; did you mean `{hint}`?"
    return message
