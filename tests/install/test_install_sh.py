"""install.sh, run for real in a temporary HOME and prefix.

The failure cases stop before anything is downloaded, so they are fast; the one slow
test installs `--from` this checkout (its dependencies come from the package index, or
pip's cache), enrolls against the real local server, upgrades in place, and is refused an expired
token without touching the installed version.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.server.fixtures import FakeClock, start_server

INSTALL_SH = REPO_ROOT / "install.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOFU_TUI_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    # Reuse the real user's pip cache: the temporary HOME must not force a cold download.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    env["HOME"] = str(tmp_path / "home")
    env["TOFU_TUI_HOME"] = str(tmp_path / "station")
    env["TMPDIR"] = str(tmp_path)
    env.update(extra)
    return env


def _install(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
             piped: bool = False) -> subprocess.CompletedProcess[str]:
    """Run install.sh; PIPED runs it the `curl URL/install.sh | sh -s -- ARGS` way, the
    script on standard input (a child that read stdin would swallow the script)."""
    # bash reads a piped script line by line (dash buffers it), so a child reading
    # stdin would visibly eat the rest of the script; it is /bin/sh on many systems.
    sh = (shutil.which("bash") if piped else None) or shutil.which("sh") or "/bin/sh"
    options = ["--prefix", str(tmp_path / "prefix"), "--bin-dir", str(tmp_path / "bin"), *args]
    return subprocess.run(
        [sh, "-s", "--", *options] if piped else [sh, str(INSTALL_SH), *options],
        input=INSTALL_SH.read_text() if piped else None,
        capture_output=True,
        text=True,
        env=env or _env(tmp_path),
        timeout=timeout,
        stdin=None if piped else subprocess.DEVNULL,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_nothing_installed(tmp_path: Path) -> None:
    assert not (tmp_path / "prefix").exists()
    assert not (tmp_path / "bin" / "tofu-tui").exists()
    assert not (tmp_path / "bin" / "tofu-tui").is_symlink()


def test_help_and_usage_errors(tmp_path: Path) -> None:
    result = _install(tmp_path, "--help")
    assert result.returncode == 0
    assert "--token TOKEN" in result.stdout
    result = _install(tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "unknown option: --frobnicate" in result.stderr
    result = _install(tmp_path, "--token")
    assert result.returncode == 2
    assert "--token needs a value" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed here (Debian: apt-get install shellcheck)")
    result = subprocess.run([shellcheck, "-s", "sh", str(INSTALL_SH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_python_found_says_how_to_get_one(tmp_path: Path) -> None:
    # A PATH with the tools the script needs before it looks for Python, but no Python.
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("id", "uname", "mkdir", "date", "rm", "mktemp"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    result = _install(tmp_path, "--no-service", env=_env(tmp_path, PATH=str(tools)))
    assert result.returncode == 1
    assert "No Python 3.11 or newer found" in result.stderr
    assert "apt-get install python3" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_too_old_python_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.18'\nexit 1\n")
    old.chmod(0o755)
    result = _install(tmp_path, "--no-service", "--python", str(old))
    assert result.returncode == 1
    assert "Python 3.9.18" in result.stderr
    assert "needs Python 3.11 or newer" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_unreachable_server_fails_before_changing_anything(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                      "--token", "x" * 64, "--url", url)
    assert result.returncode == 1
    assert f"cannot reach the server at {url}" in result.stderr
    _assert_nothing_installed(tmp_path)


UV = Path(sys.executable).parent / "uv"


def _with_uv(env: dict[str, str]) -> dict[str, str]:
    """Put the test environment's uv (alone) first on PATH: the installer then uses it."""
    if UV.exists():
        uv_bin = Path(env["TMPDIR"]) / "uv-bin"
        uv_bin.mkdir(exist_ok=True)
        if not (uv_bin / "uv").exists():
            (uv_bin / "uv").symlink_to(UV)
        env["PATH"] = f"{uv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_unreachable_package_index_is_named_and_rolled_back(tmp_path: Path, installer: str) -> None:
    if installer == "uv" and not UV.exists():
        pytest.skip("uv is not installed beside this Python")
    index = f"http://127.0.0.1:{_closed_port()}/simple"
    env = _env(
        tmp_path,
        TOFU_TUI_INSTALLER=installer,
        UV_INDEX_URL=index,
        UV_NO_CACHE="1",
        UV_HTTP_RETRIES="0",
        PIP_INDEX_URL=index,
        PIP_CONFIG_FILE=os.devnull,  # no extra indexes from the machine's pip config
        PIP_FIND_LINKS="",
        PIP_NO_CACHE_DIR="1",
        PIP_RETRIES="1",
        PIP_TIMEOUT="3",
    )
    del env["PIP_CACHE_DIR"]
    if installer == "uv":
        env = _with_uv(env)
    result = _install(tmp_path, "--no-service", "--python", sys.executable, env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot reach the package index" in result.stderr
    assert "Nothing was changed" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_service_without_systemd_is_refused_up_front(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux") or Path("/run/systemd/system").is_dir():
        pytest.skip("needs a Linux machine where systemd is not running")
    result = _install(tmp_path, "--python", sys.executable, "--from", str(REPO_ROOT))
    assert result.returncode == 1
    assert "does not run systemd" in result.stderr
    assert "--no-service" in result.stderr
    _assert_nothing_installed(tmp_path)


def test_bad_from_and_foreign_bin_file(tmp_path: Path) -> None:
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tofu-tui").write_text("someone else's")
    result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT))
    assert result.returncode == 1
    assert "is not a link made by this installer" in result.stderr
    assert (tmp_path / "bin" / "tofu-tui").read_text() == "someone else's"
    assert not (tmp_path / "prefix").exists()


def _setup_token(url: str, key: str, name: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    station = httpx.post(f"{url}/api/v2/stations", json={"name": name}, headers=headers, timeout=30)
    station.raise_for_status()
    token = httpx.post(f"{url}/api/v2/stations/{station.json()['id']}/setup-token", headers=headers, timeout=30)
    token.raise_for_status()
    return str(token.json()["token"])


def _run(program: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.slow
def test_install_enroll_upgrade_and_refused_tokens(tmp_path: Path) -> None:
    """The only slow test: real installs from this checkout against the real local
    server: enroll, upgrade in place, then an expired token."""
    clock = FakeClock(datetime.now(UTC))
    with start_server(tmp_path / "server", clock=clock) as (url, key, _data, _handle):
        env = _with_uv(_env(tmp_path))
        token = _setup_token(url, key, "bench-1")
        result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                          "--url", url, env=_with_uv(_env(tmp_path, TOFU_TUI_TOKEN=token)), timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert token not in result.stdout + result.stderr
        link = tmp_path / "bin" / "tofu-tui"
        version = _run(link, "--version", env=env)
        assert version.returncode == 0, version.stderr
        assert "tofu-tui, version" in version.stdout
        whoami = _run(link, "whoami", env=env)
        assert whoami.returncode == 0, whoami.stderr
        assert "bench-1" in whoami.stdout
        # Its own environment, not this test's: the program runs the installed venv's Python.
        current = (tmp_path / "prefix" / "current").resolve()
        assert (current / "bin" / "python").exists()
        assert ("Using uv" in result.stdout) == UV.exists()
        # The station builds procedure environments with the uv it ships.
        assert (current / "bin" / "uv").exists()
        # The wheel carries the installers, for an installed server to hand out.
        shipped = list(current.glob("lib/python3*/site-packages/tofu_tui/install/install.sh"))
        assert [p.read_bytes() for p in shipped] == [INSTALL_SH.read_bytes()]
        assert str(current) not in sys.prefix

        # Upgrade, piped as `curl | sh`: a new environment replaces the old one; the
        # station's data is untouched.
        marker = tmp_path / "station" / "data" / "marker"
        marker.write_text("keep me")
        credentials = (tmp_path / "station" / "config" / "credentials.toml").read_bytes()
        result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                          env=env, timeout=600, piped=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Installed tofu-tui" in result.stdout  # the script ran to its end
        upgraded = (tmp_path / "prefix" / "current").resolve()
        assert upgraded != current
        assert not current.exists()
        assert [p.name for p in (tmp_path / "prefix" / "venvs").iterdir()] == [upgraded.name]
        assert marker.read_text() == "keep me"
        assert (tmp_path / "station" / "config" / "credentials.toml").read_bytes() == credentials
        assert _run(link, "whoami", env=env).returncode == 0

        # An expired token: refused, and the installed version stays as it was.
        expired = _setup_token(url, key, "bench-2")
        clock.advance(hours=2)
        result = _install(tmp_path, "--no-service", "--python", sys.executable, "--from", str(REPO_ROOT),
                          "--url", url, env=_with_uv(_env(tmp_path, TOFU_TUI_TOKEN=expired)), timeout=600)
        assert result.returncode == 1
        assert "expired" in result.stderr
        assert "Nothing was changed" in result.stderr
        assert (tmp_path / "prefix" / "current").resolve() == upgraded
        assert [p.name for p in (tmp_path / "prefix" / "venvs").iterdir()] == [upgraded.name]
        assert not (tmp_path / "prefix" / ".install.lock").exists()
        assert (tmp_path / "station" / "config" / "credentials.toml").read_bytes() == credentials
        whoami = _run(link, "whoami", env=env)
        assert whoami.returncode == 0, whoami.stderr
        assert "bench-1" in whoami.stdout

        # Uninstall from the installed program: config, data, the program and its link go.
        gone = _run(link, "uninstall", "--yes", env=env)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert not (tmp_path / "prefix").exists()
        assert not link.is_symlink()
        assert not (tmp_path / "station" / "config" / "credentials.toml").exists()
        assert not marker.exists()


def _python_without_venv(tmp_path: Path) -> Path:
    """A 'Python' that passes the version checks but cannot make a virtual environment."""
    fake = tmp_path / "fakepy" / "python3"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        "  --version) echo 'Python 3.12.0' ;;\n"
        "  -c) exit 0 ;;\n"
        "  -m) echo 'venv: cannot create' >&2; exit 1 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    return fake


def test_a_live_install_lock_is_respected_and_a_stale_one_taken_over(tmp_path: Path) -> None:
    fake = _python_without_venv(tmp_path)
    lock = tmp_path / "prefix" / ".install.lock"
    lock.mkdir(parents=True)
    (lock / "pid").write_text(str(os.getpid()))
    result = _install(tmp_path, "--no-service", "--python", str(fake))
    assert result.returncode == 1
    assert f"another install (process {os.getpid()}) is running" in result.stderr
    assert (lock / "pid").read_text() == str(os.getpid())

    dead = subprocess.Popen(["true"])
    dead.wait()
    (lock / "pid").write_text(str(dead.pid))
    result = _install(tmp_path, "--no-service", "--python", str(fake))
    assert result.returncode == 1
    assert "could not create a virtual environment" in result.stderr
    # The stale lock was taken over, then released; nothing else is left in the prefix.
    assert sorted(p.name for p in (tmp_path / "prefix").iterdir()) == []


def test_the_local_server_hands_out_the_installers(tmp_path: Path) -> None:
    """The install command a station token comes with (`curl URL/install.sh | sh`)."""
    with start_server(tmp_path / "server") as (url, key, _data, _handle):
        script = httpx.get(f"{url}/install.sh", timeout=30)
        assert script.status_code == 200
        assert script.text == INSTALL_SH.read_text()
        ps1 = httpx.get(f"{url}/install.ps1", timeout=30)
        assert ps1.status_code == 200
        assert ps1.text == (REPO_ROOT / "install.ps1").read_text()
        station_id = httpx.post(f"{url}/api/v2/stations", json={"name": "b"},
                                headers={"Authorization": f"Bearer {key}"}, timeout=30).json()["id"]
        command = httpx.post(f"{url}/api/v2/stations/{station_id}/setup-token", headers={"Authorization": f"Bearer {key}"},
                             timeout=30).json()["install_command"]
        assert f"{url}/install.sh" in command and "--token" in command
