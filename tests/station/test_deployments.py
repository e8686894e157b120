"""Deployments from real Git repositories (pygit2) into immutable folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.station.gitrepo import Repo, link
from tofu_tui.models.events import DeploymentPulled, Event
from tofu_tui.station import state_db
from tofu_tui.station.api_client import CurrentStation
from tofu_tui.station.deployments import DeploymentManager, ProcedureUnavailable
from tofu_tui.station.paths import StationPaths


def current(*procedures: dict[str, Any]) -> CurrentStation:
    return CurrentStation.model_validate({"id": "st_1", "name": "bench", "procedures": list(procedures)})


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def manager(paths: StationPaths, events: list[Event]) -> DeploymentManager:
    return DeploymentManager(paths, state_db.connect(paths.state_db), emit=events.append, keep_versions=1)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "remote")


def pulled(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.deployment_id, e.status) for e in events if isinstance(e, DeploymentPulled)]


def test_deploy_checks_out_commit_with_station_interpreter(manager: DeploymentManager, repo: Repo,
                                                           events: list[Event]) -> None:
    sha = repo.procedure("v1", extra={"tools/run.sh": "#!/bin/sh\necho hi\n"})
    (repo.path / "tools/run.sh").chmod(0o755)
    sha = repo.commit({}, "exec bit")
    manager.sync(current(link("p1", "Board test", "d1", sha, repo.url)))
    version = manager.active("Board test")
    assert version.deployment_id == "d1" and version.sha == sha
    assert version.directory == manager.paths.deployments / "p1" / sha
    assert "version v1" in (version.directory / "phases.py").read_text()
    assert (version.directory / "tools/run.sh").stat().st_mode & 0o111
    assert not (version.directory / ".git").exists()
    assert version.python == sys.executable
    assert pulled(events) == [("d1", "active")]
    assert manager.active("p1") == manager.active("board-test") == version


def test_procedure_in_a_subfolder(paths: StationPaths, manager: DeploymentManager, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "mono", subdir="benches/fct")
    sha = repo.procedure("sub")
    manager.sync(current(link("p1", "FCT", "d1", sha, repo.url, path="benches/fct")))
    assert (manager.active("p1").directory / "procedure.yaml").is_file()
    sha2 = repo.commit({"../../README.md": "hello"})
    manager.sync(current(link("p1", "FCT", "d2", sha2, repo.url, path="wrong/path")))
    assert manager.active("p1").deployment_id == "d1"
    assert "no procedure.yaml in wrong/path" in (manager.linked_procedures()[0].staged.error or "")  # type: ignore[union-attr]


def test_new_deployment_during_a_run_is_staged_then_switched(manager: DeploymentManager, repo: Repo,
                                                             events: list[Event]) -> None:
    sha1 = repo.procedure("v1")
    manager.sync(current(link("p1", "Board test", "d1", sha1, repo.url)))
    in_flight = manager.active("p1")
    manager.run_started(in_flight)
    sha2 = repo.procedure("v2")
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)))
    (proc,) = manager.linked_procedures()
    assert proc.active and proc.active.id == "d1" and proc.staged and proc.staged.id == "d2"
    assert "version v1" in (in_flight.directory / "phases.py").read_text()  # untouched under the run
    manager.run_ended(in_flight)
    nxt = manager.active("p1")
    assert nxt.deployment_id == "d2" and "version v2" in (nxt.directory / "phases.py").read_text()
    assert pulled(events) == [("d1", "active"), ("d2", "staged"), ("d2", "active")]


def test_unreachable_remote_keeps_last_good_version(manager: DeploymentManager, repo: Repo, tmp_path: Path,
                                                    events: list[Event]) -> None:
    sha1 = repo.procedure("v1")
    manager.sync(current(link("p1", "Board test", "d1", sha1, repo.url)))
    sha2 = repo.procedure("v2")
    gone = str(tmp_path / "moved-away")
    manager.sync(current(link("p1", "Board test", "d2", sha2, gone)))
    assert manager.active("p1").deployment_id == "d1"
    (proc,) = manager.linked_procedures()
    assert proc.staged and proc.staged.status == "failed" and "cannot fetch" in (proc.staged.error or "")
    assert ("d2", "failed") in pulled(events)
    # Same failure again: reported once, not on every poll.
    manager.sync(current(link("p1", "Board test", "d2", sha2, gone)), force=True)
    assert pulled(events).count(("d2", "failed")) == 1
    # The remote is back: the next Pull picks it up.
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)), force=True)
    assert manager.active("p1").deployment_id == "d2"


def test_force_push_and_deleted_commit(manager: DeploymentManager, repo: Repo, paths: StationPaths,
                                       tmp_path: Path) -> None:
    sha1 = repo.procedure("v1")
    sha2 = repo.procedure("v2")
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)))
    repo.force_reset(sha1)  # v2 vanished upstream
    manager.collect_garbage()
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)), force=True)
    assert manager.active("p1").sha == sha2  # still runs what it deployed
    # A deployment of a commit that no longer exists anywhere: the old version stays.
    missing = "0123456789abcdef0123456789abcdef01234567"
    manager.sync(current(link("p1", "Board test", "d3", missing, repo.url)))
    assert manager.active("p1").deployment_id == "d2"
    (proc,) = manager.linked_procedures()
    assert proc.staged and "not in" in (proc.staged.error or "") and "force-pushed" in (proc.staged.error or "")


def test_requirements_build_a_venv_and_bad_ones_fail(manager: DeploymentManager, repo: Repo,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    sha1 = repo.procedure("v1", extra={"requirements.txt": "# nothing needed yet\n"})
    manager.sync(current(link("p1", "Board test", "d1", sha1, repo.url)))
    version = manager.active("p1")
    assert Path(version.python) == version.directory / ".venv" / "bin" / "python"
    assert Path(version.python).exists()
    sha2 = repo.procedure("v2", extra={"requirements.txt": "surely-not-a-real-package-xyz==9.9.9\n"})
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)))
    assert manager.active("p1").deployment_id == "d1"
    (proc,) = manager.linked_procedures()
    assert proc.staged and "installing requirements.txt failed" in (proc.staged.error or "")


def test_unlink_stops_new_runs_but_not_the_one_in_flight(manager: DeploymentManager, repo: Repo) -> None:
    sha = repo.procedure("v1")
    manager.sync(current(link("p1", "Board test", "d1", sha, repo.url)))
    version = manager.active("p1")
    manager.run_started(version)
    manager.sync(current())
    with pytest.raises(ProcedureUnavailable, match="no longer linked"):
        manager.active("p1")
    assert (version.directory / "procedure.yaml").is_file()
    manager.run_ended(version)
    with pytest.raises(ProcedureUnavailable, match="No procedure 'ghost'"):
        manager.active("ghost")


def test_old_versions_are_collected_but_rollback_target_kept(manager: DeploymentManager, repo: Repo) -> None:
    dirs = []
    for i in range(4):
        sha = repo.procedure(f"v{i}")
        manager.sync(current(link("p1", "Board test", f"d{i}", sha, repo.url)))
        dirs.append(manager.active("p1").directory)
    # keep_versions=1: the active one and the previous one remain.
    assert [d.exists() for d in dirs] == [False, False, True, True]
    manager.sync(current(link("p1", "Board test", "d2", None, repo.url) | {
        "deployment": {"id": "d2", "commit": {"sha": dirs[2].name}, "repository": {"url": repo.url}}}))
    assert manager.active("p1").deployment_id == "d2"  # rollback: instant, no fetch


def test_redeploying_a_commit_already_here_needs_no_remote(manager: DeploymentManager, repo: Repo,
                                                           tmp_path: Path) -> None:
    sha = repo.procedure("v1")
    manager.sync(current(link("p1", "Board test", "d1", sha, repo.url)))
    first = manager.active("p1")
    manager.sync(current(link("p1", "Board test", "d1-again", sha, str(tmp_path / "gone"))))
    again = manager.active("p1")
    assert again.deployment_id == "d1-again" and again.checkout == first.checkout


def test_pyproject_makes_a_venv_even_with_tool_settings_only(manager: DeploymentManager, repo: Repo,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    pyproject = '[project]\nname = "bench"\nversion = "0"\ndependencies = []\n\n[tool.ruff]\nline-length = 100\n'
    sha = repo.procedure("v1", extra={"pyproject.toml": pyproject})
    manager.sync(current(link("p1", "Board test", "d1", sha, repo.url)))
    version = manager.active("p1")
    assert Path(version.python).parent.parent == version.directory / ".venv"
    sha2 = repo.procedure("v2", extra={"pyproject.toml": "[tool.ruff]\nline-length = 90\n"})
    manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url)))
    assert manager.active("p1").deployment_id == "d2"  # tool settings only: nothing to install


def test_second_subfolder_of_a_commit_here_rebuilds_the_shared_venv(manager: DeploymentManager, repo: Repo,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Another deployment of a commit already checked out, in another subfolder, under
    the same requirements.txt: its venv is rebuilt (uv refuses to replace one unless told)."""
    monkeypatch.setenv("UV_OFFLINE", "1")
    sha = repo.commit({"requirements.txt": "# nothing needed\n", "phases.py": "def check(log):\n    pass\n",
                       **{f"{bench}/procedure.yaml": "name: b\nversion: '1'\nmain:\n  - name: check\n"
                          "    python: phases:check\n" for bench in ("a", "b")}})
    manager.sync(current(link("p1", "Board test", "d1", sha, repo.url, path="a")))
    assert manager.active("p1").deployment_id == "d1"
    manager.sync(current(link("p1", "Board test", "d2", sha, repo.url, path="b")))
    version = manager.active("p1")
    assert version.deployment_id == "d2", manager.linked_procedures()[0].staged
    assert Path(version.python).is_file()
