"""Loading a procedure: find the file, parse the YAML keeping line numbers, validate it
(procedure-format §3 rows 1-11) and report every problem as `file:line: field: problem`."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tofu_tui.procedure.identifiers import is_valid_key
from tofu_tui.procedure.interpreter import find_dependency_file, find_interpreter, unusable_venvs
from tofu_tui.procedure.preflight import preflight
from tofu_tui.procedure.references import PythonReference
from tofu_tui.procedure.schema import PhaseSpec, ProcedureSpec

Loc = tuple[Any, ...]
PROCEDURE_FILES = ("procedure.yaml", "procedure.yml")


class Problem(BaseModel):
    """One thing wrong with a procedure, located as precisely as we can."""

    file: str
    line: int | None = None
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ProcedureLoadError(Exception):
    """The procedure cannot run; `str()` gives one problem per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class LoadedProcedure:
    spec: ProcedureSpec  # derived keys filled in, disabled phases removed
    file: Path  # the YAML file
    directory: Path  # cwd and sys.path[0] of workers
    interpreter: Path
    warnings: list[Problem] = field(default_factory=list)
    procedure_id: str | None = None  # from tofupilot.json, for the upload (§1)
    dependency_file: Path | None = None  # nearest pyproject.toml, else requirements.txt
    references: dict[str, PythonReference] = field(default_factory=dict)  # phase `python:` text -> resolved


def read_link_file(directory: Path) -> tuple[str | None, Problem | None]:
    """`tofupilot.json` `procedureId`, and a warning if the file exists but is unusable."""
    link = directory / "tofupilot.json"
    if not link.is_file():
        return None, None
    try:
        data = json.loads(link.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, Problem(file=str(link), message=f"ignored: not valid JSON ({exc})")
    value = data.get("procedureId") if isinstance(data, dict) else None
    if value is None:
        return None, None
    if not isinstance(value, str) or not value.strip():
        return None, Problem(file=str(link), field="procedureId", message="ignored: expected a non-empty string")
    return value.strip(), None


# ---------------------------------------------------------------- discovery (§3 row 1)


def find_procedure_file(path: Path) -> Path:
    """The YAML file for a directory or file argument; raises ProcedureLoadError."""
    if path.is_dir():
        for name in PROCEDURE_FILES:
            if (path / name).is_file():
                return path / name
        raise ProcedureLoadError(
            [Problem(file=str(path), message="no procedure.yaml or procedure.yml in this directory")]
        )
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ProcedureLoadError(
            [
                Problem(
                    file=str(path),
                    message="a procedure file must end in .yaml or .yml; pass the procedure directory or its procedure.yaml",
                )
            ]
        )
    if not path.is_file():
        raise ProcedureLoadError([Problem(file=str(path), message="file not found")])
    return path


def format_loc(loc: Loc) -> str:
    """('main', 2, 'depends_on') -> 'main[2].depends_on'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _line(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


# ---------------------------------------------------------------- pydantic errors -> problems

_KIND = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_LEGACY: dict[Loc, str] = {
    ("execution", "model"): "legacy `execution.model` is not supported; use `strategy`, `workers` and `slots`",
}


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model that owns the mapping at `loc` (for listing allowed fields)."""
    annotation: Any = ProcedureSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if _is_dict(annotation):
            annotation = typing.get_args(_strip_optional(annotation))[-1]
            continue
        model = _inner(annotation)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if info is None:
            return None
        annotation = info.annotation
    model = _inner(annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _strip_optional(annotation: Any) -> Any:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _is_dict(annotation: Any) -> bool:
    return typing.get_origin(_strip_optional(annotation)) is dict


def _inner(annotation: Any) -> Any:
    """Unwrap Optional and list[...] down to a model class if there is one."""
    for _ in range(4):
        annotation = _strip_optional(annotation)
        if typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
            continue
        return annotation
    return annotation


def _allowed(loc: Loc) -> str:
    model = _model_at(loc)
    if model is None:
        return ""
    hidden = {*getattr(model, "_engine_only", ()), "execution_declared", "id"}
    names = sorted(
        shown
        for shown in (info.alias or name for name, info in model.model_fields.items())
        if shown not in hidden
    )
    return "; allowed here: " + ", ".join(names) if names else ""


def _message(error: Any) -> tuple[Loc, str]:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "tofu_field":
        return (*loc, ctx["field"]), ctx["message"]
    if kind == "tofu":
        return loc, ctx["message"]
    if kind == "missing":
        return loc, "required field is missing"
    if loc and loc[-1] == "[key]":
        return loc[:-2], f"keys must be text, got {loc[-2]!r}"
    if kind == "invalid_key":
        return loc[:-1], f"unknown field {loc[-1]!r}" + _allowed(loc[:-1])
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        parent = tuple(p for p in loc[:-1] if not isinstance(p, int))
        if (*parent, key) in _LEGACY:
            return loc, _LEGACY[(*parent, key)]
        if key in ("is_decisive", "marginal", "marginal_min", "marginal_max"):
            return loc, f"unknown field: `{key}` is not supported (there are no decisive or marginal validators)"
        return loc, "unknown field" + _allowed(loc[:-1])
    if kind in _KIND:
        message = f"expected {_KIND[kind]}, got {_yaml_type(value)}"
        if loc and loc[-1] == "python" and isinstance(value, dict):
            message += "; the mapping form of `python:` is legacy syntax, write `module.path:function`"
        elif isinstance(value, str | int | float | bool):
            message += f" {value!r}"
        return loc, message
    if kind == "literal_error":
        return loc, f"must be {ctx.get('expected', '')}; got {value!r}"
    if kind == "string_too_long":
        return loc, f"must be at most {ctx.get('max_length')} characters (got {len(value)})"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return loc, "must not be empty"
        return loc, f"must be at least {ctx.get('min_length')} characters"
    if kind == "too_short":
        return loc, "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return loc, f"at most {ctx.get('max_length')} items (got {ctx.get('actual_length')})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        symbol = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        return loc, f"must be {symbol} {bound} (got {value!r})"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return loc, message


# ---------------------------------------------------------------- cross-entry checks (§3 rows 8-10)


def _cross_checks(spec: ProcedureSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    main = list(enumerate(spec.main))
    enabled = [(index, phase) for index, phase in main if not phase.removed]
    declared = {phase.key for _, phase in main}
    first_index: dict[str, int] = {}
    for index, phase in enabled:
        if phase.key in first_index:
            problems.append(
                (("main", index, "key"), f"duplicate phase key {phase.key!r} (also main[{first_index[phase.key]}]); give one of them its own `key:`")
            )
        else:
            first_index[phase.key] = index
    other_stages = {phase.key for phase in (*spec.setup, *spec.teardown)}
    for index, phase in enabled:
        for position, target in enumerate(phase.depends_on):
            loc: Loc = ("main", index, "depends_on", position)
            if target == phase.key:
                problems.append((loc, f"phase {phase.key!r} depends on itself"))
            elif target not in declared:
                where = " (it is a setup/teardown phase; main phases can only depend on main phases)" if target in other_stages else ""
                problems.append((loc, f"unknown phase {target!r}{where}"))
    if not problems:
        problems.extend(_cycles(enabled))
    seen_plugs: dict[str, int] = {}
    for index, plug in enumerate(spec.plugs):
        folded = plug.key.lower()
        if folded in seen_plugs:
            problems.append(
                (("plugs", index, "key"), f"plug key {plug.key!r} equals plugs[{seen_plugs[folded]}] ignoring case; plug keys must differ ignoring case")
            )
        else:
            seen_plugs[folded] = index
    return problems


def _cycles(enabled: list[tuple[int, PhaseSpec]]) -> list[tuple[Loc, str]]:
    """One problem per cycle found among enabled main phases (forward edges count, Q2)."""
    index_of = {phase.key: index for index, phase in enabled}
    edges = {phase.key: [dep for dep in phase.depends_on if dep in index_of] for _, phase in enabled}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    problems: list[tuple[Loc, str]] = []
    for start, _ in ((phase.key, None) for _, phase in enabled):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            key, position = stack[-1]
            if position < len(edges[key]):
                stack[-1] = (key, position + 1)
                target = edges[key][position]
                if state.get(target) == 1:
                    cycle = [*path[path.index(target):], target]
                    problems.append(
                        (("main", index_of[key], "depends_on"), "dependency cycle: " + " -> ".join(cycle))
                    )
                elif not state.get(target):
                    state[target] = 1
                    stack.append((target, 0))
                    path.append(target)
            else:
                state[key] = 2
                stack.pop()
                path.pop()
    return problems


def _slot_warnings(spec: ProcedureSpec) -> list[tuple[Loc, str]]:
    return [
        (("execution", "slots", index, "key"), f"slot key {slot.key!r} is not a valid identifier")
        for index, slot in enumerate(spec.execution.slots)
        if spec.execution_declared and not is_valid_key(slot.key)
    ]


# §4 built-in parameter names (the worker's BUILTIN_NAMES; a test keeps the two equal).
PHASE_BUILTINS = ("phase", "measurements", "log", "ui", "unit", "run", "attach")


def _plug_shadow_warnings(spec: ProcedureSpec) -> list[tuple[Loc, str]]:
    """§4 resolves a parameter as a built-in, then an earlier phase's result, then a plug:
    a plug whose key is taken by either never reaches a phase under that name."""
    phase_keys = {phase.key for stage in (spec.setup, spec.main, spec.teardown) for phase in stage}
    found: list[tuple[Loc, str]] = []
    for index, plug in enumerate(spec.plugs):
        if plug.key.lower() in PHASE_BUILTINS:
            found.append(
                (("plugs", index, "key"), f"plug key {plug.key!r} is also the built-in `{plug.key.lower()}` parameter: "
                 "a phase asking for it gets the built-in, never the plug; give the plug another `key:`")
            )
        elif plug.key in phase_keys:
            found.append(
                (("plugs", index, "key"), f"plug key {plug.key!r} is also a phase key: once that phase has run, "
                 "a parameter of that name gets its result, not the plug; give the plug another `key:`")
            )
    return found


def _shell_ui_warnings(spec: ProcedureSpec) -> list[tuple[Loc, str]]:
    return [
        ((stage, index, "ui"), "a shell (`executable`) phase has no operator UI; this `ui` is ignored")
        for stage in ("setup", "main", "teardown")
        for index, phase in enumerate(getattr(spec, stage))
        if phase.executable is not None and phase.ui is not None and not phase.removed
    ]


def _without_shell_ui(spec: ProcedureSpec) -> ProcedureSpec:
    """§2.2: shell phases have no UI, so a `ui` written on one never raises a prompt."""
    return spec.model_copy(
        update={
            stage: [
                phase.model_copy(update={"ui": None}) if phase.executable is not None else phase
                for phase in getattr(spec, stage)
            ]
            for stage in ("setup", "main", "teardown")
        }
    )


def _without_removed(spec: ProcedureSpec) -> ProcedureSpec:
    """Drop `enabled: false` / `result: skip` phases and edges that pointed at them."""
    stages: dict[str, list[PhaseSpec]] = {}
    for stage in ("setup", "main", "teardown"):
        kept = [phase for phase in getattr(spec, stage) if not phase.removed]
        keys = {phase.key for phase in kept}
        stages[stage] = [
            phase.model_copy(update={"depends_on": [dep for dep in phase.depends_on if dep in keys]})
            if stage == "main"
            else phase
            for phase in kept
        ]
    return spec.model_copy(update=stages)


# ---------------------------------------------------------------- entry point


def parse_procedure_text(text: str, file_label: str) -> tuple[ProcedureSpec, dict[Loc, int]]:
    """Parse and schema-validate YAML text; raises ProcedureLoadError (rows 2-7)."""
    from tofu_tui.procedure.yaml_lines import YamlProblem, parse_yaml

    try:
        data, lines = parse_yaml(text)
    except YamlProblem as exc:
        raise ProcedureLoadError(
            [Problem(file=file_label, line=exc.line, field=format_loc(exc.loc) or None, message=exc.message)]
        ) from None
    if data is None:
        raise ProcedureLoadError(
            [Problem(file=file_label, line=1, message="the file is empty; a procedure needs at least `name` and `main`")]
        )
    if not isinstance(data, dict):
        raise ProcedureLoadError(
            [Problem(file=file_label, line=1, message=f"expected a mapping with `name` and `main`, got {_yaml_type(data)}")]
        )
    try:
        spec = ProcedureSpec.model_validate(data, context={"yaml": True})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc, message = _message(error)
            problems.append(
                Problem(file=file_label, line=_line(lines, loc), field=format_loc(loc) or None, message=message)
            )
        problems.sort(key=lambda problem: problem.line or 0)
        raise ProcedureLoadError(_unique(problems)) from None
    return spec, lines


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    result = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            result.append(problem)
    return result


def load_procedure(path: Path, *, interpreter: Path | None = None) -> LoadedProcedure:
    """Load, validate and pre-flight a procedure; raises ProcedureLoadError with every problem.

    `interpreter`: the §1 interpreter when the caller already looked it up for this
    procedure's directory (it prestarted a worker with it)."""
    file = find_procedure_file(Path(path))
    label = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProcedureLoadError([Problem(file=label, message=f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ProcedureLoadError([Problem(file=label, message=f"cannot read the file: {exc.strerror}")]) from None
    from tofu_tui.procedure.spec_cache import cached

    spec, lines = cached(text, lambda: parse_procedure_text(text, label))

    def problems_of(found: list[tuple[Loc, str]]) -> list[Problem]:
        return [
            Problem(file=label, line=_line(lines, loc), field=format_loc(loc), message=message)
            for loc, message in found
        ]

    problems = problems_of(_cross_checks(spec))
    if problems:
        raise ProcedureLoadError(problems)
    directory = file.parent.resolve()
    references: dict[str, PythonReference] = {}
    problems = problems_of(preflight(spec, directory, references))
    if problems:
        raise ProcedureLoadError(problems)
    procedure_id, link_warning = read_link_file(directory)
    warnings = problems_of(_slot_warnings(spec) + _shell_ui_warnings(spec) + _plug_shadow_warnings(spec))
    if link_warning is not None:
        warnings.append(link_warning)
    interpreter = interpreter or find_interpreter(directory)
    for venv in unusable_venvs(directory):
        warnings.append(
            Problem(
                file=str(venv),
                message=f"skipped: this virtual environment has no runnable Python; the procedure runs on {interpreter}",
            )
        )
    return LoadedProcedure(
        spec=_without_shell_ui(_without_removed(spec)),
        file=file.resolve(),
        directory=directory,
        interpreter=interpreter,
        warnings=warnings,
        procedure_id=procedure_id,
        dependency_file=find_dependency_file(directory),
        references=references,
    )
