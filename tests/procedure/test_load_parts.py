"""The pieces under the loader: to_identifier, durations, python references, interpreter."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tofu_tui.procedure.durations import DurationError, parse_duration
from tofu_tui.procedure.identifiers import is_valid_key, to_identifier
from tofu_tui.procedure.interpreter import find_dependency_file, find_interpreter, uv_python_find
from tofu_tui.procedure.references import ReferenceError_, colon_hint, parse_reference


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Rail Ripple (mV)", "rail_ripple_mv"),
        ("5V Bus", "_5v_bus"),
        ("  Déjà Vu  ", "deja_vu"),
        ("ÀÉÎÕÜ Ýÿ ñ ç æ œ", "aeiou_yy_n_c_a_o"),
        ("a--b  c__d", "a_b_c_d"),
        ("__x__", "x"),
        ("tab\tnew\nline", "tab_new_line"),
        ("Ω ohm € 100%", "ohm_100"),
        ("日本", ""),
        ("", ""),
        ("9", "_9"),
        ("Already_Snake", "already_snake"),
    ],
)
def test_to_identifier(text: str, key: str) -> None:
    assert to_identifier(text) == key


@pytest.mark.parametrize(("key", "valid"), [("a", True), ("_1", True), ("class", True), ("A_b9", True),
                                            ("1a", False), ("", False), ("a-b", False), ("é", False), ("a b", False)])
def test_is_valid_key(key: str, valid: bool) -> None:
    assert is_valid_key(key) is valid


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1, 1),
        (250, 250),
        ("250ms", 250),
        ("30s", 30_000),
        ("2m", 120_000),
        ("1h30m", 5_400_000),
        (" 1 h 2 m 3 s 4 ms ", 3_723_004),
        ("1s1s", 2000),  # groups are summed
        ("0s5ms", 5),
    ],
)
def test_durations(value: object, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.5s", "decimal points are not allowed"),
        ("30", "has no unit"),
        ("5s30", "30 has no unit"),
        ("5 sec", "is not a duration"),
        ("-5s", "is not a duration"),
        ("5d", "is not a duration"),
        ("", "greater than zero"),
        ("   ", "greater than zero"),
        ("0ms", "greater than zero"),
        (0, "greater than zero"),
        (-1, "cannot be negative"),
        (1.5, "whole milliseconds"),
        (True, "expected a duration"),
        ([1], "expected a duration"),
        ("１s", "is not a duration"),  # a full-width digit is not an ASCII digit
    ],
)
def test_duration_errors(value: object, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        parse_duration(value)


# ---------------------------------------------------------------- references


def test_dotted_reference(tmp_path: Path) -> None:
    ref = parse_reference("phases.rails", tmp_path)
    assert (ref.file, ref.module, ref.callable, ref.explicit_callable) == (
        tmp_path / "phases" / "rails.py",
        "phases.rails",
        "rails",
        False,
    )
    assert ref.tree_bound is False  # no phases/ directory: the import fallback may find it
    (tmp_path / "phases").mkdir()
    assert parse_reference("phases.rails:check", tmp_path).tree_bound is True
    assert parse_reference("phases.rails:check", tmp_path).callable == "check"


def test_path_reference_uses_file_stem(tmp_path: Path) -> None:
    for text in ("phases/rails.py", "phases/rails", "./phases/rails.py", "phases\\rails.py"):
        ref = parse_reference(text, tmp_path)
        assert ref.callable == "rails", text  # Q10: the stem, not `py`
        assert ref.tree_bound and ref.module is None
    assert parse_reference("phases/rails.py", tmp_path).file == tmp_path / "phases" / "rails.py"


def test_home_and_absolute_and_drive(tmp_path: Path) -> None:
    assert parse_reference("~/lib/x.py:run", tmp_path).file == Path.home() / "lib" / "x.py"
    assert parse_reference(f"{tmp_path}/abs.py:run", Path("/elsewhere")).file == tmp_path / "abs.py"
    ref = parse_reference("C:\\bench\\phase.py:run", tmp_path)  # the drive colon is not a separator
    assert ref.callable == "run"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a:b:c", "more than one ':'"),
        (":run", "no module or path"),
        ("", "no module or path"),
        ("phases.a:", "empty callable"),
        ("phases.a:  ", "empty callable"),
        ("phases.a:1run", "not a valid Python name"),
        ("phases.a:run-it", "not a valid Python name"),
        ("phases..a", "'..' is not allowed"),
    ],
)
def test_reference_errors(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ReferenceError_, match=reason):
        parse_reference(text, tmp_path)


def test_colon_hint(tmp_path: Path) -> None:
    (tmp_path / "plugs").mkdir()
    (tmp_path / "plugs" / "bank.py").write_text("")
    assert colon_hint("plugs.bank.LoadBank", tmp_path) == "plugs.bank:LoadBank"
    assert colon_hint("plugs.bank.check", tmp_path) == "plugs.bank:check"
    assert colon_hint("nowhere.mod.Check", tmp_path) == "nowhere.mod:Check"
    assert colon_hint("nowhere.mod.check", tmp_path) is None
    assert colon_hint("plugs.bank:X", tmp_path) is None


# ---------------------------------------------------------------- interpreter and dependencies


def fake_venv(root: Path, name: str) -> Path:
    python = root / name / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def test_interpreter_from_venv_in_directory(tmp_path: Path) -> None:
    directory = tmp_path / "proc"
    directory.mkdir()
    dot = fake_venv(directory, ".venv")
    assert find_interpreter(directory) == dot
    plain = fake_venv(directory, "venv")
    assert find_interpreter(directory) == plain  # `venv/` is looked at before `.venv/`


def test_interpreter_from_parent_up_to_eight_levels(tmp_path: Path) -> None:
    python = fake_venv(tmp_path, ".venv")
    deep = tmp_path.joinpath(*"abcdefgh")
    deep.mkdir(parents=True)
    assert find_interpreter(deep) == python  # 8 levels up
    deeper = deep / "i"
    deeper.mkdir()
    assert find_interpreter(deeper) != python  # 9 levels up is too far


def _beyond_walk(tmp_path: Path) -> Path:
    """A folder 9 levels below tmp_path: the walk (8 parents) never leaves tmp_path, so
    no venv outside the test (the suite's own, a stray /tmp/.venv) is within reach."""
    directory = tmp_path.joinpath(*"abcdefghi")
    directory.mkdir(parents=True)
    return directory


def test_interpreter_without_venv_or_uv_is_this_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tofu_tui.procedure import interpreter

    monkeypatch.setattr(interpreter, "_uv", lambda: None)
    assert find_interpreter(_beyond_walk(tmp_path)) == Path(sys.executable)


def test_interpreter_without_venv_is_what_uv_finds(tmp_path: Path) -> None:
    directory = _beyond_walk(tmp_path)
    found = find_interpreter(directory)
    assert found == (uv_python_find(directory) or Path(sys.executable))
    # whatever uv finds (or this interpreter), it must run Python
    import subprocess

    done = subprocess.run([str(found), "-c", "import sys; print(sys.version_info[0])"], capture_output=True, text=True)
    assert done.stdout.strip() == "3"


def test_dependency_file(tmp_path: Path) -> None:
    proc = tmp_path / "ws" / "members" / "proc"
    proc.mkdir(parents=True)
    assert find_dependency_file(proc) is None or not str(find_dependency_file(proc)).startswith(str(tmp_path))
    (proc / "requirements.txt").write_text("")
    assert find_dependency_file(proc) == proc / "requirements.txt"
    (tmp_path / "ws" / "pyproject.toml").write_text("")
    assert find_dependency_file(proc) == tmp_path / "ws" / "pyproject.toml"  # a uv workspace root wins
    (proc / "pyproject.toml").write_text("")
    assert find_dependency_file(proc) == proc / "pyproject.toml"


def test_loaded_procedure_interpreter(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tofu_tui.procedure.load import load_procedure

    directory = make_procedure("name: P\nmain: [{name: A}]\n")
    python = fake_venv(directory, "venv")
    assert load_procedure(directory).interpreter == python


def test_test_procedures_run_on_the_suite_interpreter(make_procedure) -> None:  # type: ignore[no-untyped-def]
    # tests/conftest.py pins the interpreter above every tmp_path: nothing outside the
    # test's temporary folders (a stray /tmp/.venv) decides what runs the phases.
    from tofu_tui.procedure.load import load_procedure

    directory = make_procedure("name: P\nmain: [{name: A}]\n")
    python = load_procedure(directory).interpreter
    assert python.resolve() == Path(sys.executable).resolve()
