"""`tofu-tui server …` end to end, as a newcomer runs it: real subprocesses and signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, run_cli
from tests.server.conftest import make_repo


def ok(args: list[str]) -> dict[str, object]:
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # --json: exactly one object
    body: dict[str, object] = json.loads(lines[0])
    return body


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    data = tmp_path_factory.mktemp("admin") / "srv"
    init = ok(["server", "init", "--data", str(data), "--json"])
    assert set(init) == {"api_key", "url"} and str(init["api_key"]).startswith("tofu_u_")
    assert (data / "admin.toml").stat().st_mode & 0o777 == 0o600
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "server", "start", "--data", str(data), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        url = line.split("listening on ")[1].split()[0]
        assert httpx.get(url + "/api/health").json() == {"status": "ok"}
        yield data, url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_admin_errors_are_plain_sentences(started: tuple[Path, str, subprocess.Popen[str]], tmp_path: Path) -> None:
    data, _url, _proc = started
    missing = run_cli(["server", "deploy", "ghost", "--data", str(data)])
    assert missing.returncode == 1 and "No procedure with id or name 'ghost'" in missing.stderr
    nowhere = run_cli(["server", "station", "create", "x", "--data", str(tmp_path / "empty")])
    assert nowhere.returncode == 2 and "server init" in nowhere.stderr
    down = run_cli(["server", "station", "create", "x", "--url", "http://127.0.0.1:9", "--key", "k"])
    assert down.returncode == 1 and "Cannot reach the server" in down.stderr


def test_init_start_station_login_procedure_link_deploy(started: tuple[Path, str, subprocess.Popen[str]], tmp_path: Path) -> None:
    data, url, proc = started
    d = ["--data", str(data), "--json"]
    station = ok(["server", "station", "create", "bench-1", *d])
    assert set(station) == {"id", "token", "expires_at", "install_command"}
    assert station["install_command"] == f"curl -fsSL {url}/install.sh | TOFU_TUI_TOKEN={station['token']} sh -s -- --url {url}"

    redeemed = httpx.post(url + "/api/cli/login/redeem", json={"token": station["token"], "hostname": "bench"})
    assert redeemed.status_code == 200
    bench = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {redeemed.json()['api_key']}"})

    _repo, sha = make_repo(tmp_path / "repo", {"procedure.yaml": "name: FVT\n"})
    procedure = ok(["server", "procedure", "create", "FVT", "--repo", str(tmp_path / "repo"), *d])
    assert set(procedure) == {"id"}
    ok(["server", "link", "bench-1", "FVT", *d])
    deployed = ok(["server", "deploy", "FVT", *d])
    assert deployed["sha"] == sha

    current = bench.get("/api/v2/stations/current").json()
    assert current["procedures"][0]["id"] == procedure["id"]
    assert current["procedures"][0]["deployment"]["id"] == deployed["id"]
    assert current["procedures"][0]["deployment"]["commit"]["sha"] == sha

    sent = ok(["server", "command", "bench-1", "Run", "--procedure", "FVT", "--serial", "SN-1", *d])
    commands = bench.post("/api/cli/heartbeat", json={}).json()["commands"]
    assert commands[-1] == {"name": "Run", "id": sent["id"], "procedure_id": procedure["id"], "serial_number": "SN-1"}

    back = ok(["server", "rollback", "FVT", str(deployed["id"]), *d])
    assert back == {"id": deployed["id"], "sha": sha}
    other_key = ok(["server", "key", "create", *d])["api_key"]
    assert httpx.get(url + "/api/v2/stations", headers={"Authorization": f"Bearer {other_key}"}).status_code == 200

    again = ok(["server", "station", "token", "bench-1", *d])
    assert again["id"] == station["id"] and again["token"] != station["token"]
    ok(["server", "unlink", station["id"], procedure["id"], *d])
    assert bench.get("/api/v2/stations/current").json()["procedures"] == []

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None and "stopped" in proc.stderr.read()


def test_start_refuses_more_than_one_worker_and_says_why(tmp_path: Path) -> None:
    """The stream hub lives in one process: a workers setting other than 1 (the flag, or
    WEB_CONCURRENCY from a uvicorn/gunicorn habit) is refused before anything listens."""
    data = tmp_path / "data"
    flag = run_cli(["server", "start", "--data", str(data), "--port", "0", "--workers", "4"])
    assert flag.returncode == 2
    assert "one process" in flag.stderr and "--workers" in flag.stderr
    env = run_cli(["server", "start", "--data", str(data), "--port", "0"], env={"WEB_CONCURRENCY": "2"})
    assert env.returncode == 2 and "WEB_CONCURRENCY" in env.stderr
    assert not (data / "admin.toml").exists()  # refused before setting anything up
    helptext = run_cli(["server", "start", "--help"]).stdout
    assert "one process" in helptext and "--workers" in helptext
