"""Loading procedure.yaml: the parsed model, and every §3 load error as the user sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procedure.conftest import MakeProcedure
from tofu_tui.procedure.load import ProcedureLoadError, load_procedure

PHASE_FILES = {"phases/__init__.py": "", "phases/a.py": "def a():\n    pass\n"}


def errors(directory: Path, name: str = "procedure.yaml") -> list[str]:
    """The problem lines of a failing load, with the folder prefix removed."""
    with pytest.raises(ProcedureLoadError) as caught:
        load_procedure(directory)
    prefix = str(directory / name)
    lines = str(caught.value).splitlines()
    assert lines == [str(problem) for problem in caught.value.problems]
    return [line.replace(prefix, name, 1) for line in lines]


# ---------------------------------------------------------------- what a good file gives


def test_defaults_and_derived_keys(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: "  Charger EOL  "
        version: " 2.4.0 "
        main:
          - name: Rail Ripple (mV)
            python: phases.a
            measurements:
              - {name: 5V Bus, unit: " V "}
            ui:
              components:
                - {type: text_input}
                - {type: number_input, label: "Scan Serial #"}
                - {type: radio, options: [{value: 1, label: " One "}]}
        """,
        PHASE_FILES,
    )
    loaded = load_procedure(directory)
    spec = loaded.spec
    assert spec.name == "Charger EOL"
    assert spec.version == "2.4.0"
    assert loaded.directory == directory.resolve()
    assert loaded.file == (directory / "procedure.yaml").resolve()
    phase = spec.main[0]
    assert (phase.key, phase.stage, phase.scope) == ("rail_ripple_mv", "main", "slot")
    assert phase.measurements[0].key == "_5v_bus"
    assert phase.measurements[0].unit == "V"
    assert phase.ui is not None
    assert [c.key for c in phase.ui.components] == ["textinput", "scan_serial", "radio"]
    option = phase.ui.components[2].options
    assert option is not None and (option[0].value, option[0].label) == ("1", "One")
    assert phase.ui.components[0].required is False and phase.ui.components[0].trim is True
    # no execution block at all: 4 workers, one default slot
    assert spec.execution_declared is False
    assert spec.execution.workers == 4
    assert [(s.name, s.key) for s in spec.execution.slots] == [("default", "default")]
    assert spec.execution.strategy == "phase_first" and spec.execution.on_first_failure == "stop"


def test_execution_block_defaults_to_eight_workers(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        execution: {strategy: slot_first, slots: [{name: Left Bay, extra: ignored}, {name: R, key: right}]}
        main: [{name: A}]
        """
    )
    spec = load_procedure(directory).spec
    assert spec.execution_declared is True
    assert spec.execution.workers == 8
    assert spec.execution.strategy == "slot_first"
    assert [s.key for s in spec.execution.slots] == ["left_bay", "right"]


def test_durations_retry_then_scope_aliases(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        setup:
          - {name: S1, scope: all}
          - {name: S2, scope: each}
          - {name: S3, scope: run}
          - {name: S4}
        main:
          - name: A
            timeout: 1h30m
            retry: {limit: 3, delay: " 2 s 500 ms "}
            then: {pass: continue, fail: retry, error: stop, timeout: stop}
            scope: execution
          - {name: B, timeout: 250}
        teardown:
          - {name: T, scope: execution}
        """
    )
    spec = load_procedure(directory).spec
    assert [p.scope for p in spec.setup] == ["execution", "slot", "execution", "slot"]
    assert [p.stage for p in spec.setup] == ["setup"] * 4
    a, b = spec.main
    assert a.timeout_ms == 5_400_000 and b.timeout_ms == 250
    assert a.retry is not None and (a.retry.limit, a.retry.delay_ms) == (3, 2500)
    assert a.then is not None and (a.then.pass_, a.then.fail, a.then.error, a.then.timeout) == (
        "continue",
        "retry",
        "stop",
        "stop",
    )
    assert a.scope == "slot"  # ignored on main
    assert spec.teardown[0].scope == "execution" and spec.teardown[0].execution_wide


def test_plug_defaults_and_scope_aliases(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        plugs:
          - {name: Load Bank, python: "plugs/bank.py:Bank", config: {port: /dev/x, rate: 5}}
          - {name: Scope, python: plugs.scope, scope: all}
          - {name: Dmm, python: plugs.scope:Scope, scope: station}
        main: [{name: A}]
        """,
        {"plugs/bank.py": "class Bank: pass\n", "plugs/scope.py": "class scope: pass\nclass Scope: pass\n"},
    )
    plugs = load_procedure(directory).spec.plugs
    assert [(p.key, p.scope) for p in plugs] == [
        ("load_bank", "slot"),
        ("scope", "execution"),
        ("dmm", "station"),
    ]
    assert plugs[0].config == {"port": "/dev/x", "rate": 5}


def test_disabled_and_skipped_phases_are_removed(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        main:
          - {name: A}
          - {name: B, enabled: false, python: phases/missing.py}
          - {name: C, result: skip}
          - {name: D, result: "skipped"}
          - {name: E, depends_on: [a, b, c]}
        teardown:
          - {name: T, enabled: false}
        """
    )
    spec = load_procedure(directory).spec
    assert [p.key for p in spec.main] == ["a", "d", "e"]
    assert spec.main[2].depends_on == ["a"]  # edges to removed phases are ignored
    assert spec.teardown == []


def test_forward_depends_on_is_accepted(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        main:
          - {name: A, depends_on: [b]}
          - {name: B}
        """
    )
    assert load_procedure(directory).spec.main[0].depends_on == ["b"]


def test_setup_depends_on_is_not_checked(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        setup: [{name: S, depends_on: [ghost, s]}]
        main: [{name: A}]
        teardown: [{name: A}]
        """
    )
    spec = load_procedure(directory).spec
    assert spec.setup[0].depends_on == ["ghost", "s"]


def test_unit_block(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        unit:
          auto_identify: true
          serial_number: {default_value: SN-1, pattern: "^SN"}
          part_number: {default_value: 42}
          sub_units:
            - {label: Main Board, serial_number: {default_value: MB1}}
          metadata:
            lot.no:+-_1: {default_value: x}
        main: [{name: A}]
        """
    )
    unit = load_procedure(directory).spec.unit
    assert unit is not None and unit.auto_identify
    assert unit.part_number is not None and unit.part_number.default_value == "42"
    assert unit.sub_units is not None and unit.sub_units[0].key == "main_board"
    assert unit.metadata is not None and list(unit.metadata) == ["lot.no:+-_1"]


def test_yml_and_explicit_file(make_procedure: MakeProcedure) -> None:
    directory = make_procedure("name: P\nmain: [{name: A}]\n", name="procedure.yml")
    assert load_procedure(directory).file.name == "procedure.yml"
    other = make_procedure("name: Q\nmain: [{name: A}]\n", subdir="other", name="station-b.YAML")
    assert load_procedure(other / "station-b.YAML").spec.name == "Q"


def test_yaml_wins_over_yml(make_procedure: MakeProcedure) -> None:
    directory = make_procedure("name: Y\nmain: [{name: A}]\n", name="procedure.yml")
    (directory / "procedure.yaml").write_text("name: X\nmain: [{name: A}]\n")
    assert load_procedure(directory).spec.name == "X"


def test_slot_key_not_an_identifier_only_warns(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        execution: {slots: [{name: Bay, key: "1-left"}]}
        main: [{name: A}]
        """
    )
    loaded = load_procedure(directory)
    assert loaded.spec.execution.slots[0].key == "1-left"
    assert [str(w).split(": ", 1)[1] for w in loaded.warnings] == [
        "execution.slots[0].key: slot key '1-left' is not a valid identifier"
    ]


# ---------------------------------------------------------------- row 1: the file


def test_missing_directory_file(tmp_path: Path) -> None:
    with pytest.raises(ProcedureLoadError) as caught:
        load_procedure(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no procedure.yaml or procedure.yml in this directory"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProcedureLoadError) as caught:
        load_procedure(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_wrong_extension(tmp_path: Path) -> None:
    (tmp_path / "procedure.json").write_text("{}")
    with pytest.raises(ProcedureLoadError) as caught:
        load_procedure(tmp_path / "procedure.json")
    assert "must end in .yaml or .yml" in str(caught.value)
    assert str(caught.value).startswith(f"{tmp_path / 'procedure.json'}: ")


# ---------------------------------------------------------------- row 2: parse


BAD_CASES: list[tuple[str, str, list[str]]] = [
    (
        "yaml syntax error",
        """
        name: P
        main:
          - name: A
            python: [unclosed
        """,
        [
            "procedure.yaml:5: invalid YAML at column 1: did not find expected ',' or ']'"
            " (while parsing a flow sequence that started on line 4)"
        ],
    ),
    (
        "tab indentation",
        "name: P\nmain:\n\t- name: A\n",
        [
            "procedure.yaml:3: invalid YAML at column 1: found character that cannot start any token"
            " (while scanning for the next token); this line has a tab: indent with spaces"
        ],
    ),
    (
        "duplicate yaml key",
        """
        name: P
        main: [{name: A}]
        name: Q
        """,
        ["procedure.yaml:3: invalid YAML: duplicate key 'name' in the same mapping"],
    ),
    (
        "recursive alias",
        """
        name: P
        main: &m [{name: A, depends_on: *m}]
        """,
        ["procedure.yaml:2: main[0].depends_on: invalid YAML: an alias refers to itself"],
    ),
    (
        "alias bomb",
        "name: P\nmain: [{name: A}]\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
        + "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 7))
        + "x: *x6\n",
        ["procedure.yaml:8: x5: invalid YAML: aliases expand to more than 200,000 values"],
    ),
    (
        "python tag",
        """
        name: !!python/object/apply:os.system [echo hi]
        main: [{name: A}]
        """,
        ["procedure.yaml:1: name: invalid YAML: unsupported tag 'tag:yaml.org,2002:python/object/apply:os.system'"],
    ),
    ("empty file", "", ["procedure.yaml:1: the file is empty; a procedure needs at least `name` and `main`"]),
    ("not a mapping", "- a\n- b\n", ["procedure.yaml:1: expected a mapping with `name` and `main`, got a list"]),
    (
        "unknown top-level field",
        """
        name: P
        main: [{name: A}]
        stations: 3
        """,
        [
            "procedure.yaml:3: stations: unknown field; allowed here: description, execution, main, name,"
            " plugs, setup, teardown, unit, version"
        ],
    ),
    (
        "unknown phase field",
        """
        name: P
        main:
          - name: A
            timeout_ms: 5
        """,
        ["procedure.yaml:4: main[0].timeout_ms: unknown field"],
    ),
    (
        "unknown field deep inside",
        """
        name: P
        main:
          - name: A
            measurements:
              - name: V
                validators:
                  - {operator: ">", expected_value: 1, limit: 2}
        """,
        [
            "procedure.yaml:7: main[0].measurements[0].validators[0].limit: unknown field;"
            " allowed here: expected_value, expression, operator, outcome"
        ],
    ),
    (
        "is_decisive rejected",
        """
        name: P
        main:
          - name: A
            measurements:
              - name: V
                validators:
                  - operator: ">"
                    expected_value: 1
                    is_decisive: true
        """,
        [
            "procedure.yaml:9: main[0].measurements[0].validators[0].is_decisive: unknown field:"
            " `is_decisive` is not supported (there are no decisive or marginal validators)"
        ],
    ),
    (
        "legacy execution.model",
        """
        name: P
        execution:
          model: parallel
        main: [{name: A}]
        """,
        ["procedure.yaml:3: execution.model: legacy `execution.model` is not supported; use `strategy`, `workers` and `slots`"],
    ),
    (
        "legacy python mapping",
        """
        name: P
        main:
          - name: A
            python:
              module: phases.a
              function: a
        """,
        [
            "procedure.yaml:4: main[0].python: expected a string, got a mapping; the mapping form of"
            " `python:` is legacy syntax, write `module.path:function`"
        ],
    ),
    (
        "missing name",
        """
        main: [{name: A}]
        """,
        ["procedure.yaml:1: name: required field is missing"],
    ),
    (
        "missing phase name",
        """
        name: P
        main:
          - python: phases.a
        """,
        ["procedure.yaml:3: main[0].name: required field is missing"],
    ),
    (
        "wrong type workers",
        """
        name: P
        execution: {workers: "3"}
        main: [{name: A}]
        """,
        ["procedure.yaml:2: execution.workers: expected an integer, got a string '3'"],
    ),
    (
        "wrong type required",
        """
        name: P
        main:
          - name: A
            ui: {components: [{type: switch, required: "yes"}]}
        """,
        ["procedure.yaml:4: main[0].ui.components[0].required: expected true or false, got a string 'yes'"],
    ),
    (
        "non-text keys",
        """
        name: P
        plugs: [{name: X, python: plugs/bank.py, config: {1: 2}}]
        main: [{name: A, retry: {limit: 1, 5: 3}}, null]
        """,
        [
            "procedure.yaml:2: plugs[0].config: keys must be text, got 1",
            "procedure.yaml:3: main[0].retry: unknown field 5; allowed here: delay, limit",
            "procedure.yaml:3: main[1]: expected a mapping, got null",
        ],
    ),
    (
        "main not a list",
        """
        name: P
        main: {name: A}
        """,
        ["procedure.yaml:2: main: expected a list, got a mapping"],
    ),
    (
        "bad enum",
        """
        name: P
        execution: {strategy: round_robin, on_first_failure: abort}
        main: [{name: A}]
        """,
        [
            "procedure.yaml:2: execution.strategy: must be 'phase_first' or 'slot_first'; got 'round_robin'",
            "procedure.yaml:2: execution.on_first_failure: must be 'stop' or 'continue'; got 'abort'",
        ],
    ),
    (
        "bad then action",
        """
        name: P
        main:
          - name: A
            then: {pass: next}
        """,
        ["procedure.yaml:4: main[0].then.pass: must be 'continue', 'stop' or 'retry'; got 'next'"],
    ),
    (
        "bad component type",
        """
        name: P
        main:
          - name: A
            ui: {components: [{type: button}]}
        """,
        [
            "procedure.yaml:4: main[0].ui.components[0].type: must be 'text_input', 'number_input',"
            " 'switch', 'textarea', 'radio', 'select', 'multiselect', 'checklist', 'slider', 'text',"
            " 'image' or 'progress'; got 'button'"
        ],
    ),
    (
        "bad plug scope",
        """
        name: P
        plugs: [{name: X, python: plugs/x.py, scope: global}]
        main: [{name: A}]
        """,
        ["procedure.yaml:2: plugs[0].scope: must be one of slot, each, execution, all, run, station; got 'global'"],
    ),
    (
        "timeout with decimal point",
        """
        name: P
        main:
          - name: A
            timeout: 1.5s
        """,
        ["procedure.yaml:4: main[0].timeout: '1.5s': decimal points are not allowed in durations; write e.g. 1500ms instead of 1.5s"],
    ),
    (
        "timeout missing unit",
        """
        name: P
        main:
          - {name: A, timeout: "30"}
        """,
        [
            "procedure.yaml:3: main[0].timeout: '30': 30 has no unit; add one of ms, s, m, h (e.g. 30ms),"
            " or write the whole duration as a plain number of milliseconds"
        ],
    ),
    (
        "timeout bad character",
        """
        name: P
        main:
          - {name: A, timeout: 5sec}
        """,
        ["procedure.yaml:3: main[0].timeout: '5sec' is not a duration; use <number><unit> groups with units ms, s, m, h (e.g. 1h30m, 250ms)"],
    ),
    (
        "timeout zero, empty, negative, fractional",
        """
        name: P
        main:
          - {name: A, timeout: 0s}
          - {name: B, timeout: ""}
          - {name: C, timeout: -5}
          - {name: D, timeout: 2.5}
        """,
        [
            "procedure.yaml:3: main[0].timeout: '0s': a duration must be greater than zero",
            "procedure.yaml:4: main[1].timeout: a duration must be greater than zero (got an empty string)",
            "procedure.yaml:5: main[2].timeout: a duration cannot be negative, got -5",
            "procedure.yaml:6: main[3].timeout: a duration must be whole milliseconds or use units (e.g. 1500ms), got 2.5",
        ],
    ),
    (
        "timeout over 24h",
        """
        name: P
        main:
          - {name: A, timeout: 25h}
        """,
        ["procedure.yaml:3: main[0].timeout: must be at most 24h (got 90000000 ms)"],
    ),
    (
        "retry delay bad and limit out of range",
        """
        name: P
        main:
          - name: A
            retry: {limit: 11, delay: 1.5m}
          - name: B
            retry: {delay: 1s}
        """,
        [
            "procedure.yaml:4: main[0].retry.limit: must be <= 10 (got 11)",
            "procedure.yaml:4: main[0].retry.delay: '1.5m': decimal points are not allowed in durations; write e.g. 1500ms instead of 1.5s",
            "procedure.yaml:6: main[1].retry.limit: required field is missing",
        ],
    ),
    # ------------------------------------------------------------ row 3: limits, keys, sub-units
    (
        "name too long",
        f"""
        name: {"x" * 101}
        main: [{{name: A}}]
        """,
        ["procedure.yaml:1: name: must be at most 100 characters (got 101)"],
    ),
    (
        "blank phase name",
        """
        name: P
        main: [{name: "   "}]
        """,
        ["procedure.yaml:2: main[0].name: must not be empty"],
    ),
    (
        "workers out of range",
        """
        name: P
        execution: {workers: 0}
        main: [{name: A}]
        """,
        ["procedure.yaml:2: execution.workers: must be >= 1 (got 0)"],
    ),
    (
        "invalid explicit key",
        """
        name: P
        main:
          - {name: A, key: 9lives}
        """,
        ["procedure.yaml:3: main[0].key: '9lives' is not a valid key: use letters, digits and _ and do not start with a digit"],
    ),
    (
        "key cannot be derived",
        """
        name: P
        main:
          - name: "???"
        """,
        ["procedure.yaml:3: main[0].key: cannot derive a key from name '???'; set `key:` explicitly"],
    ),
    (
        "empty key",
        """
        name: P
        main:
          - {name: A, key: ""}
        """,
        ["procedure.yaml:3: main[0].key: must not be empty"],
    ),
    (
        "too many depends_on",
        "name: P\nmain:\n  - {name: A, depends_on: [" + ", ".join(["a"] * 101) + "]}\n",
        ["procedure.yaml:3: main[0].depends_on: at most 100 items (got 101)"],
    ),
    (
        "version too long",
        f"""
        name: P
        version: "{"1" * 51}"
        main: [{{name: A}}]
        """,
        ["procedure.yaml:2: version: must be at most 50 characters (got 51)"],
    ),
    (
        "phase description too long",
        f"""
        name: P
        main: [{{name: A, description: "{"d" * 1001}"}}]
        """,
        ["procedure.yaml:2: main[0].description: must be at most 1000 characters (got 1001)"],
    ),
    (
        "slot name too long",
        f"""
        name: P
        execution: {{slots: [{{name: "{"s" * 51}"}}]}}
        main: [{{name: A}}]
        """,
        ["procedure.yaml:2: execution.slots[0].name: must be at most 50 characters (got 51)"],
    ),
    (
        "sub-units empty list",
        """
        name: P
        unit: {sub_units: []}
        main: [{name: A}]
        """,
        ["procedure.yaml:2: unit.sub_units: must not be empty"],
    ),
    (
        "sub-unit keys equal ignoring case",
        """
        name: P
        unit:
          sub_units:
            - {label: Board}
            - {label: Other, key: BOARD}
        main: [{name: A}]
        """,
        ["procedure.yaml:3: unit.sub_units: sub-unit keys must be unique ignoring case: 'BOARD' repeats 'board'"],
    ),
    (
        "sub-unit invalid key",
        """
        name: P
        unit:
          sub_units:
            - {label: Board, key: "b-1"}
        main: [{name: A}]
        """,
        ["procedure.yaml:4: unit.sub_units[0].key: 'b-1' is not a valid key: use letters, digits and _ and do not start with a digit"],
    ),
    # ------------------------------------------------------------ row 4
    (
        "auto_identify without defaults",
        """
        name: P
        unit:
          auto_identify: true
          serial_number: {default_value: "  "}
          sub_units: [{label: Board}]
        main: [{name: A}]
        """,
        [
            "procedure.yaml:3: unit.auto_identify: auto_identify needs a non-blank default for"
            " serial_number.default_value, part_number.default_value,"
            " sub_units[board].serial_number.default_value"
        ],
    ),
    (
        "bad metadata key",
        """
        name: P
        unit:
          metadata:
            "lot number": {}
        main: [{name: A}]
        """,
        ["procedure.yaml:3: unit.metadata: metadata key 'lot number' must be 1 to 40 characters from A-Z a-z 0-9 _ . : + -"],
    ),
    (
        "too many metadata keys",
        "name: P\nunit:\n  metadata:\n" + "".join(f"    k{i}: {{}}\n" for i in range(51)) + "main: [{name: A}]\n",
        ["procedure.yaml:3: unit.metadata: at most 50 metadata keys (got 51)"],
    ),
    # ------------------------------------------------------------ rows 5-7
    (
        "python and executable",
        """
        name: P
        main:
          - name: A
            python: phases.a
            executable: {command: "echo hi"}
        """,
        ["procedure.yaml:5: main[0].executable: a phase has either `python` or `executable`, not both"],
    ),
    (
        "bad shell",
        """
        name: P
        main:
          - name: A
            executable: {command: "echo hi", shell: fish}
        """,
        ["procedure.yaml:4: main[0].executable.shell: must be 'bash', 'sh', 'zsh', 'powershell', 'pwsh' or 'cmd'; got 'fish'"],
    ),
    (
        "empty command",
        """
        name: P
        main:
          - name: A
            executable: {command: ""}
        """,
        ["procedure.yaml:4: main[0].executable.command: must not be empty"],
    ),
    (
        "bad width aspect fit",
        """
        name: P
        main:
          - name: A
            ui:
              components:
                - {type: image, width: 120%, aspect: 21/9, fit: stretch}
                - {type: image, width: "0%"}
                - {type: image, width: wide}
        """,
        [
            "procedure.yaml:6: main[0].ui.components[0].width: must be a percentage N% with 0 < N <= 100, got '120%'",
            "procedure.yaml:6: main[0].ui.components[0].aspect: must be '16/9', '4/3', '3/4', '2/3', '9/16', 'square' or 'auto'; got '21/9'",
            "procedure.yaml:6: main[0].ui.components[0].fit: must be 'contain', 'cover' or 'fill'; got 'stretch'",
            "procedure.yaml:7: main[0].ui.components[1].width: must be a percentage N% with 0 < N <= 100, got '0%'",
            "procedure.yaml:8: main[0].ui.components[2].width: must be a percentage N% with 0 < N <= 100, got 'wide'",
        ],
    ),
    (
        "option type without options",
        """
        name: P
        main:
          - name: A
            ui:
              components:
                - {type: select, label: Colour}
                - {type: checklist, options: []}
        """,
        [
            "procedure.yaml:6: main[0].ui.components[0].options: a select needs a non-empty `options` list",
            "procedure.yaml:7: main[0].ui.components[1].options: a checklist needs a non-empty `options` list",
        ],
    ),
    (
        "too many image options",
        "name: P\nmain:\n  - name: A\n    ui:\n      components:\n        - type: radio\n          options:\n"
        + "".join(f"            - {{value: v{i}, label: L, image: img{i}.png}}\n" for i in range(13)),
        ["procedure.yaml:7: main[0].ui.components[0].options: at most 12 options when any has an image (got 13)"],
    ),
    (
        "bad default_value",
        """
        name: P
        main:
          - name: A
            ui: {components: [{type: text_input, default_value: {a: 1}}]}
        """,
        ["procedure.yaml:4: main[0].ui.components[0].default_value: must be a bool, a number, a string or a list of strings; got {'a': 1}"],
    ),
    (
        "scope station on a phase",
        """
        name: P
        setup:
          - {name: S, scope: station}
        main: [{name: A}]
        """,
        ["procedure.yaml:3: setup[0].scope: `scope: station` is only for plugs; a phase runs per slot or once per execution"],
    ),
    (
        "main empty",
        """
        name: P
        main: []
        """,
        ["procedure.yaml:2: main: `main` must list at least one phase"],
    ),
    (
        "main absent",
        """
        name: P
        setup: [{name: S}]
        """,
        ["procedure.yaml:1: main: `main` must list at least one phase"],
    ),
    # ------------------------------------------------------------ rows 8-10
    (
        "duplicate main keys",
        """
        name: P
        main:
          - {name: Check}
          - {name: Other}
          - {name: " check "}
          - {name: Z, key: other}
        """,
        [
            "procedure.yaml:5: main[2].key: duplicate phase key 'check' (also main[0]); give one of them its own `key:`",
            "procedure.yaml:6: main[3].key: duplicate phase key 'other' (also main[1]); give one of them its own `key:`",
        ],
    ),
    (
        "plug keys equal ignoring case",
        """
        name: P
        plugs:
          - {name: Bank, python: plugs/bank.py}
          - {name: Other, key: BANK, python: plugs/bank.py}
        main: [{name: A}]
        """,
        ["procedure.yaml:4: plugs[1].key: plug key 'BANK' equals plugs[0] ignoring case; plug keys must differ ignoring case"],
    ),
    (
        "unknown depends_on",
        """
        name: P
        main:
          - {name: A}
          - name: B
            depends_on:
              - a
              - ghost
        """,
        ["procedure.yaml:7: main[1].depends_on[1]: unknown phase 'ghost'"],
    ),
    (
        "depends_on a setup phase",
        """
        name: P
        setup: [{name: Power}]
        main:
          - {name: A, depends_on: [power]}
        """,
        [
            "procedure.yaml:4: main[0].depends_on[0]: unknown phase 'power' (it is a setup/teardown phase;"
            " main phases can only depend on main phases)"
        ],
    ),
    (
        "self dependency",
        """
        name: P
        main:
          - {name: A, depends_on: [a]}
        """,
        ["procedure.yaml:3: main[0].depends_on[0]: phase 'a' depends on itself"],
    ),
    (
        "cycle",
        """
        name: P
        main:
          - {name: A, depends_on: [c]}
          - {name: B, depends_on: [a]}
          - {name: C, depends_on: [b]}
          - {name: D}
        """,
        ["procedure.yaml:4: main[1].depends_on: dependency cycle: a -> c -> b -> a"],
    ),
    # ------------------------------------------------------------ several problems at once
    (
        "all schema problems reported together",
        """
        name: P
        execution: {workers: 300, bogus: 1}
        main:
          - {name: A, retry: {limit: 0}}
        """,
        [
            "procedure.yaml:2: execution.workers: must be <= 256 (got 300)",
            "procedure.yaml:2: execution.bogus: unknown field; allowed here: on_first_failure, slots, strategy, workers",
            "procedure.yaml:4: main[0].retry.limit: must be >= 1 (got 0)",
        ],
    ),
]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [pytest.param(text, expected, id=case) for case, text, expected in BAD_CASES],
)
def test_load_error(make_procedure: MakeProcedure, yaml_text: str, expected: list[str]) -> None:
    directory = make_procedure(yaml_text, {"plugs/bank.py": "class bank: pass\n"})
    assert errors(directory) == expected


# ---------------------------------------------------------------- row 11: pre-flight


def test_preflight_reports_every_problem_together(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        plugs:
          - {name: Bank, python: plugs.bank.LoadBank}
          - {name: Psu, python: "plugs/psu.py:Psu"}
          - {name: Dmm, python: "plugs/dmm-v2.py"}
        setup:
          - {name: S, python: "phases/missing.py"}
        main:
          - {name: A, python: phases.a}
          - {name: B, python: phases.nothere}
          - {name: C, python: "phases.a:1bad"}
          - {name: D, python: "a:b:c"}
          - {name: E, python: phases.a.check}
          - {name: F, python: "installed_pkg.module:run"}
          - {name: G, python: "./phases/a.py:a"}
        teardown:
          - {name: T, python: "~/surely/not/here/phase.py"}
        """,
        {
            **PHASE_FILES,
            "plugs/bank.py": "class LoadBank: pass\n",
            "plugs/dmm-v2.py": "class Dmm: pass\n",
        },
    )
    assert errors(directory) == [
        "procedure.yaml:3: plugs[0].python: plug file plugs/bank/LoadBank.py not found; did you mean `plugs.bank:LoadBank`?",
        "procedure.yaml:4: plugs[1].python: plug file plugs/psu.py not found",
        "procedure.yaml:5: plugs[2].python: 'dmm-v2' (from the file name) is not a valid class name; write `plugs/dmm-v2.py:ClassName`",
        "procedure.yaml:7: setup[0].python: phase file phases/missing.py not found",
        "procedure.yaml:10: main[1].python: phase file phases/nothere.py not found",
        "procedure.yaml:11: main[2].python: 'phases.a:1bad': '1bad' is not a valid Python name (letters, digits and _, not starting with a digit)",
        "procedure.yaml:12: main[3].python: 'a:b:c' has more than one ':'; write PATH:CALLABLE or MODULE:CALLABLE",
        "procedure.yaml:13: main[4].python: phase file phases/a/check.py not found; did you mean `phases.a:check`?",
        f"procedure.yaml:17: teardown[0].python: phase file {Path('~/surely/not/here/phase.py').expanduser()} not found",
    ]


def test_preflight_skips_disabled_phases(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        main:
          - {name: A, python: phases/gone.py, enabled: false}
          - {name: B}
        """
    )
    assert [p.key for p in load_procedure(directory).spec.main] == ["b"]


def test_schema_errors_stop_before_preflight(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        main:
          - {name: A, python: phases/gone.py, bogus: 1}
        """
    )
    assert errors(directory) == [
        "procedure.yaml:3: main[0].bogus: unknown field; allowed here: depends_on, description, enabled,"
        " executable, key, measurements, name, python, result, retry, scope, then, timeout, ui"
    ]


def test_yaml_1_2_scalars(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: P
        version: 2024-01-01
        main:
          - name: A
            ui:
              components:
                - {type: radio, key: answer, default_value: no, options: [{value: yes}, {value: no}, {value: on}]}
                - {type: number_input, key: n, default_value: 010}
        """
    )
    spec = load_procedure(directory).spec
    assert spec.version == "2024-01-01"
    assert spec.main[0].ui is not None
    radio, number = spec.main[0].ui.components
    assert radio.default_value == "no"
    assert [option.value for option in radio.options or []] == ["yes", "no", "on"]
    assert number.default_value == 10


def test_link_file_and_dependency_file(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        "name: P\nmain: [{name: A}]\n",
        {"tofupilot.json": '{"procedureId": " proc_123 ", "procedureName": "P"}', "requirements.txt": ""},
    )
    loaded = load_procedure(directory)
    assert loaded.procedure_id == "proc_123"
    assert loaded.dependency_file == directory.resolve() / "requirements.txt"
    (directory / "tofupilot.json").write_text("{broken")
    loaded = load_procedure(directory)
    assert loaded.procedure_id is None
    assert [str(w).split(": ", 1)[1] for w in loaded.warnings] == [
        "ignored: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]
