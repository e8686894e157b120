"""The deployment manager shared by the event loop (status, runs) and a sync worker thread."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.station.gitrepo import Repo, link
from tofu_tui.station import state_db
from tofu_tui.station.api_client import CurrentStation
from tofu_tui.station.deployments import DeploymentManager
from tofu_tui.station.paths import StationPaths


def current(*procedures: dict[str, Any]) -> CurrentStation:
    return CurrentStation.model_validate({"id": "st_1", "name": "bench", "procedures": list(procedures)})


def in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


def test_status_reads_and_run_starts_during_syncs_stay_consistent(paths: StationPaths, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "remote")
    # No spare versions: a version is removed from disk as soon as no run holds it.
    manager = DeploymentManager(paths, state_db.connect(paths.state_db), keep_versions=0)
    sha_of = {f"d{i}": repo.procedure(f"v{i}") for i in range(40)}
    manager.sync(current(link("p1", "Board test", "d0", sha_of["d0"], repo.url)))
    done = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def syncer() -> None:
        try:
            for i in range(1, 40):
                manager.sync(current(link("p1", "Board test", f"d{i}", sha_of[f"d{i}"], repo.url)), force=i % 5 == 0)
        finally:
            done.set()

    def reader() -> None:
        while not done.is_set():
            (proc,) = manager.linked_procedures()
            assert proc.active is not None and proc.active.sha == sha_of[proc.active.id]
            version = manager.take("p1")  # a run starts: the version stays on disk until it ends
            try:
                assert version.sha == sha_of[version.deployment_id]
                assert (version.directory / "procedure.yaml").is_file()
            finally:
                manager.run_ended(version)
            reads[0] += 1

    threads = [in_thread(syncer, errors), in_thread(reader, errors), in_thread(reader, errors)]
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert done.is_set() and reads[0] > 0
    # Once every run ended, the last deployment is the active one and nothing is left staged.
    (proc,) = manager.linked_procedures()
    assert proc.active is not None and proc.active.id == "d39" and proc.staged is None
    assert (manager.active("p1").directory / "procedure.yaml").is_file()


class _HeldIndex(http.server.BaseHTTPRequestHandler):
    """A package index that answers only once the test lets it: a slow install, for real."""

    asked: threading.Event
    release: threading.Event

    def do_GET(self) -> None:
        self.asked.set()
        self.release.wait(30)
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def held_index() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    asked, release = threading.Event(), threading.Event()
    handler = type("Handler", (_HeldIndex,), {"asked": asked, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", asked, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_status_and_runs_never_wait_behind_a_slow_install(paths: StationPaths, tmp_path: Path,
                                                          held_index: tuple[str, threading.Event, threading.Event],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV_OFFLINE", raising=False)
    monkeypatch.setenv("UV_NO_CACHE", "1")
    index, asked, release = held_index
    repo = Repo(tmp_path / "remote")
    manager = DeploymentManager(paths, state_db.connect(paths.state_db))
    sha1 = repo.procedure("v1")
    manager.sync(current(link("p1", "Board test", "d1", sha1, repo.url)))
    sha2 = repo.procedure("v2", extra={"requirements.txt": f"--index-url {index}\nnot-a-real-package-xyz\n"})
    errors: list[BaseException] = []
    syncing = in_thread(lambda: manager.sync(current(link("p1", "Board test", "d2", sha2, repo.url))), errors)
    assert asked.wait(30), errors  # the sync is now inside `uv pip install`, waiting on the index
    seen: list[str] = []

    def status_and_run() -> None:
        (proc,) = manager.linked_procedures()
        seen.append(proc.active.id if proc.active else "none")
        version = manager.take("Board test")
        seen.append(version.deployment_id)
        manager.run_ended(version)

    reading = in_thread(status_and_run, errors)
    reading.join(15)
    answered_while_held = not reading.is_alive() and syncing.is_alive()
    release.set()
    syncing.join(60)
    reading.join(30)
    assert not errors, errors
    assert answered_while_held, "the status and the run waited for the install to finish"
    assert seen == ["d1", "d1"]
    (proc,) = manager.linked_procedures()
    assert proc.active is not None and proc.active.id == "d1"
    assert proc.staged is not None and proc.staged.status == "failed"
