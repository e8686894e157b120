"""cli.md writes `tofu-tui server link STATION PROCEDURE`, `deploy`, `command`… without
`--data`: after `server init` (or `start`), the admin commands find that server by
themselves; with none set up they say how to name one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env, run_cli


def test_admin_commands_find_the_server_this_user_set_up(tmp_path: Path) -> None:
    env = {"TOFU_TUI_HOME": str(tmp_path / "home")}  # where this "user" keeps its pointer
    data = tmp_path / "srv"
    init = run_cli(["server", "init", "--data", str(data), "--json"], env=env)
    assert init.returncode == 0, init.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "server", "start", "--data", str(data), "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(env), stdin=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        created = run_cli(["server", "station", "create", "Bench 1", "--json"], env=env)
        assert created.returncode == 0, created.stderr
        assert set(json.loads(created.stdout)) == {"id", "token", "expires_at", "install_command"}
        assert ready["url"] in json.loads(created.stdout)["install_command"]
        procedure = run_cli(["server", "procedure", "create", "Board", "--repo", str(tmp_path), "--json"], env=env)
        assert procedure.returncode == 0, procedure.stderr
        linked = run_cli(["server", "link", "Bench 1", "Board"], env=env)
        assert linked.returncode == 0, linked.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def test_without_any_server_set_up_it_asks_which(tmp_path: Path) -> None:
    done = run_cli(["server", "station", "create", "Bench 1"], env={"TOFU_TUI_HOME": str(tmp_path / "empty")})
    assert done.returncode == 2
    assert "Which server? Pass --data DIR" in done.stderr
