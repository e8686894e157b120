"""The parsed-procedure cache: same result as parsing, never stale, never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tofu_tui.procedure.load import ProcedureLoadError, load_procedure


def _big_procedure(folder: Path, phases: int = 40, limit: int = 10) -> Path:
    (folder / "phases").mkdir(parents=True, exist_ok=True)
    (folder / "phases" / "p.py").write_text("def p(measurements):\n    measurements.v = 5\n", encoding="utf-8")
    lines = ["name: Cached", "main:"]
    for i in range(phases):
        lines.append(
            f"  - {{name: Phase {i}, python: 'phases.p:p', measurements: "
            f"[{{name: v, validators: [{{operator: '<=', expected_value: {limit}}}]}}]}}"
        )
    text = "\n".join(lines) + "\n"
    (folder / "procedure.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TOFU_TUI_CACHE_DIR", str(folder))
    return folder / "procedures"


def test_second_load_comes_from_the_cache_and_equals_a_fresh_parse(tmp_path: Path, cache: Path) -> None:
    folder = _big_procedure(tmp_path / "proc")
    first = load_procedure(folder)
    entries = list(cache.glob("*.pickle"))
    assert len(entries) == 1
    second = load_procedure(folder)
    assert second.spec == first.spec
    assert [p.key for p in second.spec.main] == [f"phase_{i}" for i in range(40)]


def test_an_edited_procedure_is_parsed_again(tmp_path: Path, cache: Path) -> None:
    folder = _big_procedure(tmp_path / "proc", limit=10)
    load_procedure(folder)
    _big_procedure(folder, limit=3)  # same size, other limit
    loaded = load_procedure(folder)
    assert loaded.spec.main[0].measurements[0].validators[0].expected_value == 3
    assert len(list(cache.glob("*.pickle"))) == 2


def test_a_corrupt_entry_is_replaced_and_the_run_still_right(tmp_path: Path, cache: Path) -> None:
    folder = _big_procedure(tmp_path / "proc", limit=4)
    load_procedure(folder)
    (entry,) = cache.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    done = run_cli(["run", str(folder), "--serial", "SN1", "--part", "PN1"], env={"TOFU_TUI_CACHE_DIR": str(cache.parent)})
    assert done.returncode == 1, done.stderr  # 5 > 4: the limit came from the YAML
    assert entry.read_bytes() != b"not a pickle"


def test_a_broken_procedure_is_never_cached(tmp_path: Path, cache: Path) -> None:
    folder = _big_procedure(tmp_path / "proc")
    text = (folder / "procedure.yaml").read_text(encoding="utf-8")
    (folder / "procedure.yaml").write_text(text + "bogus_field: 1\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ProcedureLoadError, match="bogus_field"):
            load_procedure(folder)
    assert not list(cache.glob("*.pickle"))


def test_a_cache_path_that_is_a_file_only_costs_the_cache(tmp_path: Path, cache: Path) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text("in the way", encoding="utf-8")
    loaded = load_procedure(_big_procedure(tmp_path / "proc"))
    assert len(loaded.spec.main) == 40
