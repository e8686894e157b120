"""The root command loads each command family only when needed: its name -> module map
must match what the families register, or a command would vanish from the CLI."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

import tofu_tui.cli as cli_package
from tests.conftest import run_cli
from tofu_tui.cli import COMMAND_MODULES


def _families() -> list[str]:
    folder = Path(cli_package.__file__).parent
    return sorted(p.stem for p in folder.glob("*_cmd.py"))


def test_the_lazy_map_names_every_registered_command_and_only_those() -> None:
    registered: dict[str, str] = {}
    for family in _families():
        group = click.Group()
        importlib.import_module(f"tofu_tui.cli.{family}").register(group)
        for name in group.commands:
            assert name not in registered, f"{name} registered by {registered[name]} and {family}"
            registered[name] = family
    assert registered == COMMAND_MODULES


def test_help_lists_every_command_and_each_one_answers_help() -> None:
    done = run_cli(["--help"])
    assert done.returncode == 0, done.stderr
    for name in COMMAND_MODULES:
        assert f"\n  {name} " in done.stdout or f"\n  {name}\n" in done.stdout, name
    for name in COMMAND_MODULES:
        sub = run_cli([name, "--help"])
        assert sub.returncode == 0 and "Usage:" in sub.stdout, (name, sub.stderr)


def test_an_unknown_command_is_a_usage_error() -> None:
    done = run_cli(["bogus"])
    assert done.returncode == 2
    assert "No such command 'bogus'" in done.stderr
