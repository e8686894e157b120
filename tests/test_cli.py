from __future__ import annotations

from tests.conftest import run_cli


def test_help_lists_usage() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    assert "Usage: tofu-tui" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli(["frobnicate"])
    assert result.returncode == 2
    assert "No such command" in result.stderr
