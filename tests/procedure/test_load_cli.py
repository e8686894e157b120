"""A broken procedure through the real `tofu-tui run`: exit 2, the problem on stderr, nothing ran."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.procedure.conftest import MakeProcedure

PHASE = """
from pathlib import Path

def touch():
    Path(__file__).with_name("ran.txt").write_text("ran")
"""


def test_load_error_exit_2_and_nothing_runs(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: Broken
        main:
          - name: Touch
            python: phases/touch.py
          - name: After
            python: phases/touch.py
            depends_on: [ghost]
        """,
        {"phases/touch.py": PHASE},
    )
    done = run_cli(["run", str(directory)], timeout=60)
    assert done.returncode == 2
    assert f"{directory / 'procedure.yaml'}:7: main[1].depends_on[0]: unknown phase 'ghost'" in done.stderr.splitlines()
    assert not (directory / "phases" / "ran.txt").exists()
    # the same procedure without the bad edge does run the phase (so the check above can fail)
    yaml_file = directory / "procedure.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("depends_on: [ghost]", "depends_on: [touch]"))
    done = run_cli(["run", "--serial", "SN1", "--part", "PN1", str(directory)], timeout=60)
    assert done.returncode == 0, done.stderr
    assert (directory / "phases" / "ran.txt").read_text() == "ran"


def test_yaml_syntax_error_in_json_mode(make_procedure: MakeProcedure) -> None:
    directory = make_procedure("name: P\nmain:\n  - {name: A\n", {})
    done = run_cli(["run", "--json", str(directory)], timeout=60)
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"{directory / 'procedure.yaml'}:4: invalid YAML")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [event["type"] for event in events] == ["error"]
    assert "invalid YAML" in events[0]["message"]
