"""cli.md, Local dashboard server: every admin command and flag driven as a subprocess,
`--json` printing exactly one JSON object with the listed keys, `--url`/`--key` as well as
`--data`, `server start --json`/`--db`, and usage errors (exit 2, plain stderr)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from tests.conftest import cli_env, run_cli
from tests.server.conftest import commit, make_repo


def one_object(args: list[str]) -> dict[str, Any]:
    result = run_cli(args)
    assert result.returncode == 0, (args, result.stderr)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, (args, result.stdout)
    body = json.loads(lines[0])
    assert isinstance(body, dict)
    return body


def usage_error(args: list[str], *words: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(args, env=env)
    assert result.returncode == 2, (args, result.returncode, result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.strip(), args
    # One or two plain sentences: no usage block, no traceback.
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, (args, result.stderr)
    return result.stderr


def start(data: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tofu_tui", "server", "start", "--data", str(data), "--port", "0", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        ready = json.loads(line)
    except ValueError:
        proc.kill()
        raise AssertionError(f"not one JSON object: {line!r} {proc.stderr.read() if proc.stderr else ''}") from None
    assert httpx.get(ready["url"] + "/api/health").json() == {"status": "ok"}
    return proc, ready


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert proc.stdout is not None
    return proc.stdout.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    data = tmp_path_factory.mktemp("spec-admin") / "srv"
    init = one_object(["server", "init", "--data", str(data), "--json"])
    assert set(init) == {"api_key", "url"}
    proc, ready = start(data)
    assert set(ready) == {"url", "data"}  # init made the key: start prints none
    try:
        yield data, {**ready, "api_key": init["api_key"]}
    finally:
        assert stop(proc) == ""  # --json: the one object, nothing after it


def test_every_admin_command_with_json(served: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, ready = served
    d = ["--data", str(data), "--json"]
    repo, first = make_repo(tmp_path / "repo", {"fvt/procedure.yaml": "name: FVT\n"}, branch="prod")
    repo.create_tag("v1", pygit2.Oid(hex=first), pygit2.enums.ObjectType.COMMIT, pygit2.Signature("T", "t@x"), "v1")
    head = commit(repo, {"fvt/procedure.yaml": "name: FVT\nversion: 2\n"}, "second")

    station = one_object(["server", "station", "create", "Bench 1", *d])
    assert set(station) == {"id", "token", "expires_at", "install_command"} and len(station["token"]) == 64
    token = one_object(["server", "station", "token", "Bench 1", *d])
    assert token["token"] != station["token"] and token["token"] in token["install_command"]
    procedure = one_object(["server", "procedure", "create", "FVT", "--repo", str(tmp_path / "repo"),
                            "--branch", "prod", "--path", "fvt", *d])
    assert set(procedure) == {"id"}
    admin = httpx.Client(base_url=ready["url"], headers={"Authorization": f"Bearer {ready['api_key']}"})
    assert admin.get(f"/api/v2/procedures/{procedure['id']}").json()["repository"] == {
        "url": str(tmp_path / "repo"), "branch": "prod", "path": "fvt"}
    one_object(["server", "link", "Bench 1", "FVT", *d])

    deployed = one_object(["server", "deploy", "FVT", *d])
    assert deployed == {"id": deployed["id"], "sha": head}
    tagged = one_object(["server", "deploy", procedure["id"], "--ref", "v1", *d])
    assert tagged["sha"] == first and set(tagged) == {"id", "sha"}
    back = one_object(["server", "rollback", "FVT", deployed["id"], *d])
    assert back == deployed

    redeemed = httpx.post(ready["url"] + "/api/cli/login/redeem", json={"token": token["token"]}).json()
    bench = httpx.Client(base_url=ready["url"], headers={"Authorization": f"Bearer {redeemed['api_key']}"})
    assert bench.get("/api/v2/stations/current").json()["procedures"][0]["deployment"]["id"] == deployed["id"]
    bench.post("/api/cli/heartbeat", json={})  # the Pulls so far

    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"identify": {"serial_number": "SN-7"}, "check": {"ok": True}}))
    sent = one_object(["server", "command", "Bench 1", "Run", "--procedure", "FVT", "--serial", "SN-7",
                       "--part", "PCB-A", "--ui-values", str(answers), *d])
    stop_sent = one_object(["server", "command", station["id"], "Stop", *d])
    commands = bench.post("/api/cli/heartbeat", json={}).json()["commands"]
    assert commands == [
        {"name": "Run", "id": sent["id"], "procedure_id": procedure["id"], "serial_number": "SN-7",
         "part_number": "PCB-A", "ui_values": {"identify": {"serial_number": "SN-7"}, "check": {"ok": True}}},
        {"name": "Stop", "id": stop_sent["id"]},
    ]
    one_object(["server", "unlink", "Bench 1", "FVT", *d])
    assert bench.get("/api/v2/stations/current").json()["procedures"] == []

    # --url and --key instead of --data; the new key works and the first one still does.
    other = one_object(["server", "key", "create", "--url", ready["url"], "--key", ready["api_key"], "--json"])
    by_url = one_object(["server", "station", "create", "Bench 2", "--url", ready["url"], "--key", other["api_key"], "--json"])
    assert admin.get(f"/api/v2/stations/{by_url['id']}").json()["name"] == "Bench 2"


def test_admin_usage_errors_exit_2_with_a_plain_message(served: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, _ready = served
    d = ["--data", str(data)]
    usage_error(["server", "command", "Bench 1", "Run", *d], "--procedure")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    usage_error(["server", "command", "Bench 1", "Run", "--procedure", "FVT", "--ui-values", str(bad), *d], "JSON")
    usage_error(["server", "command", "Bench 1", "Explode", *d], "NAME")
    usage_error(["server", "station", "create", *d], "NAME")
    usage_error(["server", "procedure", "create", "--repo", "x", *d], "NAME")
    usage_error(["server", "deploy", *d], "PROCEDURE")
    usage_error(["server", "rollback", "FVT", *d], "DEPLOYMENT")
    usage_error(["server", "link", "Bench 1", *d], "PROCEDURE")
    usage_error(["server", "init"], "--data")
    usage_error(["server", "start"], "--data")
    usage_error(["server", "start", "--data", str(tmp_path / "x"), "--port", "http"], "--port")
    # Which server? (This "user" has set none up: else it is the one last set up.)
    usage_error(["server", "key", "create"], "--data", env={"TOFU_TUI_HOME": str(tmp_path / "nobody")})
    usage_error(["server", "frobnicate"], "frobnicate")
    # Not a usage error, but as plain: the server's refusal, one line, exit 1.
    refused = run_cli(["server", "rollback", "FVT", "no-such-deployment", *d])
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and "no-such-deployment" in refused.stderr


def test_start_with_an_explicit_database_url(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "dash.db"
    database.parent.mkdir()
    proc, ready = start(tmp_path / "data", "--db", f"sqlite:///{database}")
    try:
        assert set(ready) == {"url", "data", "api_key"}  # no `init` first: start made the key
        created = httpx.post(ready["url"] + "/api/v2/stations", json={"name": "x"},
                             headers={"Authorization": f"Bearer {ready['api_key']}"})
        assert created.status_code == 200
    finally:
        stop(proc)
    assert database.is_file() and not (tmp_path / "data" / "server.db").exists()
