"""cli.md, Station: `tofu-tui login` then `tofu-tui --headless` against the real local
server: config and data only under TOFU_TUI_HOME, a JSON-lines log (`ts`, `level`,
`event`), exit 75 once the dashboard revokes the station, and 0 on a clean stop."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

from tests.conftest import run_cli
from tests.station.daemonproc import Daemon, wait_until
from tests.station.realserver import RealServer


def _login(server: RealServer, home: Path, tmp_path: Path) -> tuple[str, dict[str, str]]:
    station_id, token = server.station()
    # HOME and the XDG folders point elsewhere: nothing may land there.
    elsewhere = tmp_path / "elsewhere"
    env = {
        "TOFU_TUI_HOME": str(home), "HOME": str(elsewhere), "XDG_CONFIG_HOME": str(elsewhere / "config"),
        "XDG_DATA_HOME": str(elsewhere / "data"), "XDG_STATE_HOME": str(elsewhere / "state"),
        "XDG_CACHE_HOME": str(elsewhere / "cache"),
    }
    result = run_cli(["login", "--url", server.url], env={**env, "TOFU_TUI_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert token not in result.stdout + result.stderr
    return station_id, env


def _check_log(daemon: Daemon) -> None:
    assert daemon.raw, "the daemon logged nothing"
    for raw, line in zip(daemon.raw, daemon.lines, strict=True):
        assert line.get("event") != "unparsed", raw
        assert isinstance(line["event"], str) and line["event"]
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), raw
        assert datetime.fromisoformat(str(line["ts"]).replace("Z", "+00:00")).tzinfo is not None, raw


def test_revoking_the_station_stops_the_daemon_with_75(server: RealServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    station_id, env = _login(server, home, tmp_path)
    whoami = run_cli(["whoami"], env=env)
    assert whoami.returncode == 0 and station_id in whoami.stdout
    daemon = Daemon(home, extra_env=env)
    try:
        daemon.event("daemon_started")
        wait_until(
            lambda: server.call("GET", f"/v2/stations/{station_id}")["connection_status"] == "connected",
            timeout=20, what="the station to connect",
        )
        server.call("DELETE", f"/v2/stations/{station_id}")
        # Noticed at once (the dashboard closes the revoked key's stream), not at the next poll.
        assert daemon.wait(timeout=15) == 75
        assert "setup token" in daemon.event("credentials_revoked")["message"]
    finally:
        daemon.stop()
    _check_log(daemon)
    elsewhere = tmp_path / "elsewhere"
    assert not elsewhere.exists() or [p for p in elsewhere.rglob("*") if p.is_file()] == []
    assert any(home.rglob("*"))
    revoked = run_cli(["whoami"], env=env)
    assert "revoked" in revoked.stdout + revoked.stderr


def test_a_clean_stop_exits_0(server: RealServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _login(server, home, tmp_path)
    daemon = Daemon(home, extra_env={"TOFU_TUI_HOME": str(home)})
    try:
        daemon.event("daemon_started")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
        daemon.event("daemon_stopped", exit_code=0)
    finally:
        daemon.stop()
    _check_log(daemon)


def test_a_one_shot_run_keeps_its_files_under_tofu_tui_home(tmp_path: Path) -> None:
    from tests.station.gitrepo import PHASES_PY, PROCEDURE_YAML

    folder = tmp_path / "fvt"
    folder.mkdir()
    (folder / "procedure.yaml").write_text(PROCEDURE_YAML.format(name="FVT"))
    (folder / "phases.py").write_text(PHASES_PY.format(marker="1", delay=0))
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    env = {
        "TOFU_TUI_HOME": str(home), "TOFU_TUI_CACHE_DIR": "", "HOME": str(elsewhere),
        "XDG_CONFIG_HOME": str(elsewhere / "config"), "XDG_DATA_HOME": str(elsewhere / "data"),
        "XDG_STATE_HOME": str(elsewhere / "state"), "XDG_CACHE_HOME": str(elsewhere / "cache"),
    }
    result = run_cli(["run", str(folder), "--serial", "SN-1", "--part", "PCB-A", "--headless"], env=env)
    assert result.returncode == 0, result.stderr
    assert not elsewhere.exists() or [p for p in elsewhere.rglob("*") if p.is_file()] == []
    assert any(p.is_file() for p in (home / "cache").rglob("*"))
