"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import sys
from pathlib import Path


def pin_interpreter(directory: Path) -> None:
    """Procedure repositories carry their venv (§1): give the generated ones this Python
    (the one OpenHTF runs on too) through a `.venv` beside them, rather than whatever
    lies above the temporary folder or `uv python find` picks (and times on every run)."""
    venv = directory / ".venv"
    if venv.exists() or venv.is_symlink():
        return
    if sys.prefix != sys.base_prefix:
        venv.symlink_to(sys.prefix, target_is_directory=True)
    else:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
