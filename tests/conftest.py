"""Shared fixtures: run the real `tofu-tui` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child `tofu-tui`: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("TOFU_TUI_TOKEN", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m tofu_tui ARGS` to completion and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "tofu_tui", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


@pytest.fixture
def tofu() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli
