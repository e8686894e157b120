"""Which Python runs a procedure, and which dependency file describes it (§1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

_PARENT_LEVELS = 8
_UV_TIMEOUT_S = 15.0


def _upward(directory: Path) -> list[Path]:
    """The directory itself, then up to 8 parent levels."""
    start = directory.resolve()
    return [start, *list(start.parents)[:_PARENT_LEVELS]]


def venv_python(venv: Path) -> Path | None:
    """The interpreter of a virtual environment directory, if it has one."""
    candidates = (
        [venv / "Scripts" / "python.exe"] if os.name == "nt" else [venv / "bin" / "python", venv / "bin" / "python3"]
    )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() else None


def uv_python_find(directory: Path) -> Path | None:
    """What `uv python find` picks for this directory, or None if uv is absent or fails."""
    uv = _uv()
    if uv is None:
        return None
    try:
        done = subprocess.run(
            [uv, "python", "find"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=_UV_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = done.stdout.strip().splitlines()
    if done.returncode != 0 or not found:
        return None
    path = Path(found[-1])
    return path if path.is_file() else None


def find_interpreter(directory: Path) -> Path:
    """`venv/` or `.venv/` here or up to 8 parents up; else `uv python find`; else this Python."""
    for level in _upward(directory):
        for name in ("venv", ".venv"):
            python = venv_python(level / name)
            if python is not None:
                return python
    return uv_python_find(directory) or Path(sys.executable)


def unusable_venvs(directory: Path) -> list[Path]:
    """`venv/` or `.venv/` folders the §1 walk passes over because they hold no runnable
    Python (copied from another machine, a dangling link): nearer than the one it uses."""
    found: list[Path] = []
    for level in _upward(directory):
        for name in ("venv", ".venv"):
            venv = level / name
            if venv_python(venv) is not None:
                return found
            if venv.is_dir():
                found.append(venv)
    return found


def find_dependency_file(directory: Path) -> Path | None:
    """The nearest `pyproject.toml` (same upward walk), else `requirements.txt`, else None."""
    for level in _upward(directory):
        if (level / "pyproject.toml").is_file():
            return level / "pyproject.toml"
    for level in _upward(directory):
        if (level / "requirements.txt").is_file():
            return level / "requirements.txt"
    return None
