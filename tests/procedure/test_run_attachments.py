"""Where a run's attachment files live after the run, and how that folder stays bounded
(tofu_tui/procedure/run_attachments.py)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.procedure.runhelp import UNIT, check_stream, of_type, run_json
from tofu_tui.procedure import run_attachments
from tofu_tui.procedure.run_attachments import Limits, RunAttachments, prune

ATTACHING_YAML = "name: Attaching\n" + UNIT + "main:\n  - {name: Scope, python: phases.a:scope}\n"
ATTACHING_PY = """
from pathlib import Path


def scope(attach):
    source = Path("trace.csv")
    source.write_text("t,v\\n0,3.3\\n")
    attach.file(source)
    source.unlink()  # the engine copied it at attach time
    attach.data(b"raw", "raw.bin")
"""

DAY = 86400.0


def _old_folder(root: Path, name: str, age_s: float, size: int = 10) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "f.bin").write_bytes(b"x" * size)
    when = time.time() - age_s
    os.utime(folder, (when, when))
    return folder


def _run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir(exist_ok=True)
    return {"TOFU_TUI_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(system_tmp), **extra}


def test_attachments_outlive_the_run_in_a_folder_per_execution(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(ATTACHING_YAML, {"phases/a.py": ATTACHING_PY})
    env = _run_env(tmp_path)
    root = tmp_path / "cache" / "attachments"
    stale = _old_folder(root, "stale-run", 30 * DAY)  # beyond the default 14 days

    seen: list[tuple[str, Path]] = []
    for _ in range(2):
        proc, events = run_json(folder, env=env)
        assert proc.returncode == 0, proc.stderr
        check_stream(events)
        execution_id = events[0]["execution_id"]
        attachments = of_type(events, "attachment")
        assert [(a["name"], a["size"]) for a in attachments] == [("trace.csv", 10), ("raw.bin", 3)]
        paths = [Path(a["path"]) for a in attachments]
        # after the process exited, at the announced paths
        assert paths[0].read_text() == "t,v\n0,3.3\n" and paths[1].read_bytes() == b"raw"
        assert {p.parent for p in paths} == {root / execution_id}
        seen.append((execution_id, root / execution_id))

    assert seen[0][0] != seen[1][0] and all(f.is_dir() for _id, f in seen)
    assert not stale.exists()  # pruned as a run started
    assert sorted(p.name for p in root.iterdir()) == sorted(i for i, _f in seen)  # no lock files left
    # nothing in the system temp folder: neither the attachments nor anything else
    assert list((tmp_path / "system-tmp").iterdir()) == []


def test_a_run_without_attachments_leaves_no_folder(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure("name: Plain\n" + UNIT + "main:\n  - {name: P, python: phases.p:p}\n",
                            {"phases/p.py": "def p():\n    pass\n"})
    proc, _events = run_json(folder, env=_run_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "cache" / "attachments"
    assert not root.exists() or list(root.iterdir()) == []
    assert list((tmp_path / "system-tmp").iterdir()) == []


def test_run_help_says_where_attachments_are() -> None:
    result = run_cli(["run", "--help"])
    assert result.returncode == 0
    assert "CACHE/attachments/EXECUTION_ID" in " ".join(result.stdout.split())


def test_prune_keeps_the_newest_runs(tmp_path: Path) -> None:
    ages = {f"run-{i}": (i + 1) * 3600.0 for i in range(5)}  # run-0 newest
    for name, age in ages.items():
        _old_folder(tmp_path, name, age)
    removed = prune(tmp_path, Limits(keep_runs=2))
    assert sorted(removed) == ["run-2", "run-3", "run-4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-0", "run-1"]


def test_prune_by_age_and_by_total_size_oldest_first(tmp_path: Path) -> None:
    _old_folder(tmp_path, "week-old", 7 * DAY)
    _old_folder(tmp_path, "month-old", 30 * DAY)
    assert prune(tmp_path, Limits(keep_days=14)) == ["month-old"]
    for name, age in (("a-new", 3600.0), ("b-mid", 2 * 3600.0), ("c-old", 3 * 3600.0)):
        _old_folder(tmp_path, name, age, size=400 * 1024)
    # 1 MiB holds the two newest 400 KiB folders; older ones go, oldest included
    removed = prune(tmp_path, Limits(max_mb=1.0))
    assert sorted(removed) == ["c-old", "week-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-new", "b-mid"]


def test_prune_never_touches_a_run_in_progress_nor_one_just_finished(tmp_path: Path) -> None:
    running = RunAttachments("in-progress", root=tmp_path)
    folder = running.create()
    running.lock()
    (folder / "f.bin").write_bytes(b"x")
    when = time.time() - 90 * DAY
    os.utime(folder, (when, when))
    _old_folder(tmp_path, "just-ended", 10.0)
    try:
        assert prune(tmp_path, Limits(keep_runs=0, keep_days=0, max_mb=0)) == []
        assert (folder / "f.bin").exists() and (tmp_path / "just-ended").exists()
    finally:
        running.close()
    # released: its files stay, dated now, so still protected by the grace period...
    assert (folder / "f.bin").exists() and not (tmp_path / "in-progress.lock").exists()
    assert prune(tmp_path, Limits(keep_runs=0)) == []
    # ...and pruned like any other once that has passed
    assert sorted(prune(tmp_path, Limits(keep_runs=0, grace_s=0))) == ["in-progress", "just-ended"]
    assert list(tmp_path.iterdir()) == []


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TOFU_TUI_ATTACHMENTS_KEEP_DAYS", "3")
    monkeypatch.setenv("TOFU_TUI_ATTACHMENTS_KEEP_RUNS", "20")
    monkeypatch.setenv("TOFU_TUI_ATTACHMENTS_MAX_MB", "lots")
    with caplog.at_level(logging.WARNING):
        limits = Limits.from_env()
    assert (limits.keep_days, limits.keep_runs, limits.max_mb) == (3.0, 20, run_attachments.MAX_MB)
    assert "TOFU_TUI_ATTACHMENTS_MAX_MB='lots'" in caplog.text  # a typo is said, and deletes nothing more


def test_the_folder_follows_the_cache_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOFU_TUI_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TOFU_TUI_HOME", str(tmp_path / "home"))
    assert run_attachments.attachments_root() == tmp_path / "c" / "attachments"
    monkeypatch.delenv("TOFU_TUI_CACHE_DIR")
    assert run_attachments.attachments_root() == tmp_path / "home" / "cache" / "attachments"
    monkeypatch.delenv("TOFU_TUI_HOME")
    import platformdirs

    assert run_attachments.attachments_root() == Path(platformdirs.user_cache_dir("tofu-tui")) / "attachments"


def test_a_queued_upload_keeps_its_files_through_pruning_until_uploaded(  # type: ignore[no-untyped-def]
        make_procedure, server, tmp_path: Path) -> None:
    import httpx

    from tests.station.test_real_server import enroll
    from tofu_tui.station.enroll import client_for
    from tofu_tui.station.paths import station_paths
    from tofu_tui.station.queue import Drainer, UploadQueue

    home = tmp_path / "station"
    station_id = enroll(server, home)
    # linked to the station, else the server refuses its runs (the repository is never fetched)
    procedure_id = server.procedure("Attaching", "file:///nowhere", station_id)
    folder = make_procedure(ATTACHING_YAML, {"phases/a.py": ATTACHING_PY})
    env = _run_env(tmp_path, TOFU_TUI_HOME=str(home), TOFUPILOT_PROCEDURE_ID=procedure_id)
    proc, events = run_json(folder, "--upload", env=env)  # no daemon runs: it stays queued
    assert proc.returncode == 0, proc.stderr
    run_folder = tmp_path / "cache" / "attachments" / events[0]["execution_id"]
    assert run_folder.is_dir()
    # every run folder goes, this one included, before the upload happens
    assert prune(tmp_path / "cache" / "attachments", Limits(keep_runs=0, grace_s=0)) == [run_folder.name]
    assert not run_folder.exists()
    config, client = client_for(station_paths(home))
    queue = UploadQueue(station_paths(home), config.installation_id)
    try:
        assert Drainer(queue, client, lambda e: None).drain() is None
        assert queue.entries() == []
    finally:
        queue.close()
    (summary,) = server.runs()
    files = {a["name"]: httpx.get(a["download_url"]).content for a in server.run(summary["id"])["attachments"]}
    assert files == {"trace.csv": b"t,v\n0,3.3\n", "raw.bin": b"raw"}


def test_plug_logs_are_kept_with_the_run_not_in_the_temp_folder(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Plugged\n" + UNIT
        + "plugs: [{name: Meter, python: 'plugs.meters:Meter', scope: execution}]\n"
        + "main: [{name: Read, python: phases.p:read}]\n",
        {
            "plugs/meters.py": "import sys\n\nclass Meter:\n    def __init__(self):\n"
                               "        print('meter ready', file=sys.stderr)\n\n"
                               "    def read(self):\n        return 3.3\n",
            "phases/p.py": "def read(meter):\n    assert meter.read() == 3.3\n",
        },
    )
    proc, events = run_json(folder, env=_run_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    log = tmp_path / "cache" / "attachments" / events[0]["execution_id"] / "plug-logs" / "meter.log"
    assert "meter ready" in log.read_text()
    assert list((tmp_path / "system-tmp").iterdir()) == []


def test_an_in_process_run_like_the_daemons_keeps_them_in_the_station_home(  # type: ignore[no-untyped-def]
        make_procedure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import asyncio

    from tofu_tui.procedure.execute import RunOptions, start_run
    from tofu_tui.procedure.load import load_procedure

    monkeypatch.delenv("TOFU_TUI_CACHE_DIR")
    monkeypatch.setenv("TOFU_TUI_HOME", str(tmp_path / "station"))
    root = tmp_path / "station" / "cache" / "attachments"
    stale = _old_folder(root, "stale-run", 30 * DAY)
    folder = make_procedure(ATTACHING_YAML, {"phases/a.py": ATTACHING_PY})

    async def main() -> tuple[str, list[Path]]:
        handle = await start_run(load_procedure(folder), RunOptions(), lambda event: None)
        result = await handle.wait()
        assert result.outcome == "PASS", result.error
        return handle.execution_id, [Path(a.path) for a in result.attachments[0]]

    execution_id, paths = asyncio.run(main())
    assert [p.read_bytes() for p in paths] == [b"t,v\n0,3.3\n", b"raw"]
    assert {p.parent for p in paths} == {root / execution_id}
    assert not stale.exists()


def test_pruning_runs_at_most_once_a_minute(tmp_path: Path) -> None:
    """Runs started back to back share one walk of the folder; the next is due a minute on."""
    from tofu_tui.procedure.run_attachments import prune_due

    root = tmp_path / "attachments"
    root.mkdir()
    now = time.time()
    assert prune_due(root, 60, now=now)
    assert not prune_due(root, 60, now=now + 1)
    assert not prune_due(root, 60, now=now + 59)
    assert prune_due(root, 60, now=now + 61)
    assert list(root.iterdir()) == []  # the marker lives beside the folder, not in it
