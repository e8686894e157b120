"""Shared fixtures for engine tests: procedure folders written into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

MakeProcedure = Callable[..., Path]


def write_procedure(
    directory: Path, yaml_text: str, files: dict[str, str] | None = None, *, name: str = "procedure.yaml"
) -> Path:
    """Write `procedure.yaml` (dedented) and extra files (paths relative to the folder,
    dedented, parent directories created); returns the procedure directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(yaml_text).lstrip("\n"), encoding="utf-8")
    for relative, content in (files or {}).items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return directory


@pytest.fixture
def make_procedure(tmp_path: Path) -> MakeProcedure:
    """make_procedure(yaml_text, files={"phases/a.py": "def a(): ..."}, subdir="proc") -> directory."""

    def make(
        yaml_text: str,
        files: dict[str, str] | None = None,
        *,
        subdir: str = "proc",
        name: str = "procedure.yaml",
    ) -> Path:
        return write_procedure(tmp_path / subdir, yaml_text, files, name=name)

    return make
