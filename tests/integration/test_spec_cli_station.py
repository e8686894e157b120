"""cli.md, Station: login/whoami/status/pull/queue/logout against the real local server,
`--json` outputs, and usage errors (exit 2, a plain message on stderr, nothing on stdout)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.server.conftest import make_repo
from tests.station.realserver import RealServer


def test_station_commands_against_the_real_server(server: RealServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"TOFU_TUI_HOME": str(home)}
    _repo, sha = make_repo(tmp_path / "repo", {"procedure.yaml": "name: FVT\n"})
    station_id, token = server.station("Bench 1")
    procedure_id = server.procedure("FVT", str(tmp_path / "repo"), station_id)
    server.deploy(procedure_id)

    login = run_cli(["login", "--token", token, "--url", server.url], env=env)
    assert login.returncode == 0, login.stderr
    whoami = run_cli(["whoami"], env=env)
    assert whoami.returncode == 0 and "Bench 1" in whoami.stdout and server.url in whoami.stdout
    pulled = run_cli(["pull"], env=env)
    assert pulled.returncode == 0 and sha[:12] in pulled.stdout

    status = run_cli(["status", "--json"], env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["station_id"], data["station_name"], data["server_url"], data["enrolled"]) == (
        station_id, "Bench 1", server.url, True)
    assert isinstance(data["connected"], bool)
    [linked] = data["procedures"]
    assert (linked["id"], linked["active"]["sha"], linked["staged"]) == (procedure_id, sha, None)
    assert set(data["queue"]) >= {"pending", "parked"}
    assert {"days", "last_24h", "last_90d"} <= set(data["uptime"])
    human = run_cli(["status"], env=env)
    assert human.returncode == 0 and "Bench 1" in human.stdout and sha[:8] in human.stdout

    # `queue [ls] [--json]`: the same JSON array either way.
    assert json.loads(run_cli(["queue", "--json"], env=env).stdout) == []
    assert json.loads(run_cli(["queue", "ls", "--json"], env=env).stdout) == []
    assert run_cli(["queue"], env=env).returncode == 0

    logout = run_cli(["logout"], env=env)
    assert logout.returncode == 0
    after = run_cli(["whoami"], env=env)
    assert after.returncode != 0 and "tofu-tui login" in after.stderr
    # The token was single use.
    again = run_cli(["login", "--url", server.url], env={**env, "TOFU_TUI_TOKEN": token})
    assert again.returncode != 0 and again.stdout == ""
    assert "setup token" in again.stderr and len(again.stderr.strip().splitlines()) <= 2


def test_station_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {"TOFU_TUI_HOME": str(tmp_path / "home")}
    cases = [
        (["login"], "TOFU_TUI_TOKEN"),
        (["queue", "rm"], "--all"),
        (["queue", "rm", "3", "--all"], "--all"),
        (["queue", "get"], "QUEUE_ID"),
        (["queue", "get", "abc"], "QUEUE_ID"),
        (["queue", "export"], "QUEUE_ID"),
        (["run"], "--procedure"),
        (["status", "--bogus"], "--bogus"),
        (["uninstall", "--bogus"], "--bogus"),
        (["service", "frobnicate"], "frobnicate"),
        (["--bogus"], "--bogus"),
    ]
    for args, word in cases:
        result = run_cli(args, env=env)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert result.stdout == "" and word in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stderr.startswith("Usage"), result.stderr


# Every command and flag cli.md names (each command also answers --help).
SPEC_COMMANDS: dict[tuple[str, ...], set[str]] = {
    (): {"--headless", "--help"},
    ("login",): {"--token", "--url", "--ca-cert"},
    ("logout",): set(),
    ("whoami",): set(),
    ("status",): {"--json"},
    ("pull",): set(),
    ("run",): {"--procedure", "--ui-values", "--serial", "--part"},
    ("queue",): {"--json"},
    ("queue", "ls"): {"--json"},
    ("queue", "get"): set(),
    ("queue", "retry"): set(),
    ("queue", "rm"): {"--all"},
    ("queue", "export"): {"--out"},
    ("service", "install"): set(),
    ("service", "uninstall"): set(),
    ("service", "start"): set(),
    ("service", "stop"): set(),
    ("service", "status"): set(),
    ("uninstall",): {"--keep-data", "--yes"},
    ("doctor",): set(),
    ("server", "init"): {"--data", "--json"},
    ("server", "start"): {"--data", "--host", "--port", "--db"},
    ("server", "key", "create"): {"--data", "--json"},
    ("server", "station", "create"): {"--data", "--json"},
    ("server", "station", "token"): {"--data", "--json"},
    ("server", "procedure", "create"): {"--repo", "--branch", "--path", "--data", "--json"},
    ("server", "link"): {"--data", "--url", "--key", "--json"},
    ("server", "unlink"): {"--data", "--url", "--key", "--json"},
    ("server", "deploy"): {"--ref", "--data", "--json"},
    ("server", "rollback"): {"--data", "--json"},
    ("server", "command"): {"--procedure", "--serial", "--part", "--ui-values", "--data", "--json"},
    ("demo",): {"--headless", "--runs"},
}


def test_every_command_and_flag_of_cli_md_exists_and_has_help() -> None:
    import click
    from click.testing import CliRunner

    from tofu_tui.cli import cli

    runner = CliRunner()
    for path, flags in SPEC_COMMANDS.items():
        command: click.Command = cli
        ctx = click.Context(cli, info_name="tofu-tui")
        for name in path:
            assert isinstance(command, click.Group), path
            found = command.get_command(ctx, name)
            assert found is not None, f"no command {' '.join(path)}"
            command = found
        options = {opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")}
        options.add("--help")
        assert flags <= options, (path, flags - options)
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
