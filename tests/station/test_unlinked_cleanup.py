"""A procedure unlinked from the station leaves nothing on disk once no run of it is in flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.station.gitrepo import Repo, link
from tofu_tui.station import gitfetch, state_db
from tofu_tui.station.api_client import CurrentStation
from tofu_tui.station.deployments import DeploymentManager, ProcedureUnavailable
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.queue import AttachmentFile, UploadQueue


def current(*procedures: dict[str, Any]) -> CurrentStation:
    return CurrentStation.model_validate({"id": "st_1", "name": "bench", "procedures": list(procedures)})


def test_unlinked_procedure_is_removed_after_its_run_and_relinks_cleanly(paths: StationPaths,
                                                                           tmp_path: Path) -> None:
    board, power = Repo(tmp_path / "board"), Repo(tmp_path / "power")
    manager = DeploymentManager(paths, state_db.connect(paths.state_db), keep_versions=2)
    b1, b2 = board.procedure("b1"), board.procedure("b2")
    p1 = power.procedure("p1", name="Power")
    other = link("pw", "Power", "e1", p1, power.url)
    manager.sync(current(link("bt", "Board test", "d1", b1, board.url), other))
    manager.sync(current(link("bt", "Board test", "d2", b2, board.url), other))
    spare, active = paths.deployments / "bt" / b1, paths.deployments / "bt" / b2
    assert (spare / "procedure.yaml").is_file() and (active / "procedure.yaml").is_file()
    # What a failed deployment left: its checkout (no procedure.yaml in the folder it names).
    broken = board.procedure("b3")
    manager.sync(current(link("bt", "Board test", "d3", broken, board.url, path="moved/away"), other))
    (proc, _) = manager.linked_procedures()
    assert proc.active and proc.active.id == "d2" and proc.staged and proc.staged.status == "failed"
    assert (paths.deployments / "bt" / broken).is_dir()
    board_mirror = gitfetch.mirror_path(paths.repos, board.url)
    assert board_mirror.is_dir()

    # A run is in flight, and a finished run of it waits in the upload queue with a
    # file it wrote into its checkout.
    version = manager.take("Board test")
    report = version.directory / "report.txt"
    report.write_text("measured")
    queue = UploadQueue(paths, "inst")
    queued = queue.enqueue({"procedure_id": "bt", "outcome": "PASS"}, [AttachmentFile("report.txt", report)])

    manager.sync(current(other))  # unlinked during the run
    with pytest.raises(ProcedureUnavailable, match="no longer linked"):
        manager.active("bt")
    assert (version.directory / "phases.py").is_file(), "removed under the run in flight"
    manager.run_ended(version)
    manager.sync(current(other))  # the next sync after the run

    assert not (paths.deployments / "bt").exists()
    assert not board_mirror.exists()
    # The other procedure and its mirror are untouched; the queued run keeps its file.
    assert (manager.active("Power").directory / "procedure.yaml").is_file()
    assert gitfetch.mirror_path(paths.repos, power.url).is_dir()
    (attachment,) = queue.get(queued.queue_id)["attachments"]
    assert Path(attachment["path"]).read_text() == "measured"
    assert [p.name for p in manager.linked_procedures()] == ["Power"]

    # Linked again later: fetched afresh and runnable.
    manager.sync(current(link("bt", "Board test", "d2", b2, board.url), other))
    again = manager.active("Board test")
    assert again.deployment_id == "d2" and "version b2" in (again.directory / "phases.py").read_text()


def test_unlinked_procedure_sharing_a_repository_keeps_the_mirror(paths: StationPaths, tmp_path: Path) -> None:
    mono = Repo(tmp_path / "mono")
    manager = DeploymentManager(paths, state_db.connect(paths.state_db))
    sha = mono.procedure("one")
    manager.sync(current(link("a", "A", "da", sha, mono.url), link("b", "B", "db", sha, mono.url)))
    manager.sync(current(link("b", "B", "db", sha, mono.url)))
    assert not (paths.deployments / "a").exists()
    assert gitfetch.mirror_path(paths.repos, mono.url).is_dir()
    assert (manager.active("B").directory / "procedure.yaml").is_file()
