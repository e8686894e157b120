"""Worker pool: timeouts, crashes, floods, shell phases, cancellation (§2.2, §8, issue 2)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.procedure.poolkit import Session, messages, request, run_phases, with_pool, yaml_for
from tofu_tui.procedure.load import load_procedure
from tofu_tui.procedure.pool import (
    LiveEngineWarning,
    LiveLog,
    WorkerPool,
    WorkerStartError,
    prestart_worker,
)
from tofu_tui.procedure.worker import HEAD_LINES, LINE_CAP, TAIL_LINES


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


class _StarvedWatchdog(WorkerPool):
    """The engine's timeout watchdog never gets the loop first: what a loaded 2-core
    machine does now and then, when the worker's report arrives before the timer runs."""

    def _arm_watchdog(self, attempt, expire):  # type: ignore[no-untyped-def]
        return lambda: None


def test_failure_after_the_deadline_is_timeout_even_if_the_worker_reports_first(make_procedure) -> None:
    """A worker-side timeout (a plug call bounded by the phase deadline raising) is
    TIMEOUT, never ERROR, whichever side notices first (procedure-format Q8)."""
    folder = make_procedure(
        yaml_for("  - {name: late, python: phases.late, timeout: 300ms}", "ok"),
        {
            "phases/late.py": """
            import time

            def late(measurements):
                measurements.partial = 1
                time.sleep(0.6)
                raise TimeoutError("plug bank.slow() did not answer before the phase deadline")
            """,
            "phases/ok.py": "def ok(measurements):\n    measurements.v = 1\n",
        },
    )

    async def main():  # type: ignore[no-untyped-def]
        loaded = load_procedure(folder)
        pool = _StarvedWatchdog(loaded, 1, lambda event: None, attachments_dir=folder.parent / "attachments")
        await pool.start()
        try:
            session = Session(loaded, pool, [])
            return await session.run("late"), await session.run("ok")
        finally:
            await pool.close()

    late, ok = asyncio.run(main())
    assert late.timed_out is True and late.error is None
    assert late.measurements == {}
    assert [(line.level, line.message) for line in late.logs] == [("ERROR", "Phase timed out after 1 seconds")]
    assert ok.error is None and not ok.timed_out  # the worker that reported stays usable


def test_timeout_kills_the_process_group_and_replaces_the_worker(make_procedure, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    folder = make_procedure(
        yaml_for(
            "  - {name: hang, python: phases.hang, timeout: 600ms}",
            "ok",
        ),
        {
            "phases/hang.py": f"""
            import subprocess, time

            def hang(measurements, log):
                measurements.partial = 1
                log.info("about to hang")
                child = subprocess.Popen(["sleep", "600"])
                open({str(pidfile)!r}, "w").write(str(child.pid))
                while True:
                    time.sleep(1)
            """,
            "phases/ok.py": "def ok(measurements):\n    measurements.v = 1\n",
        },
    )

    async def body(s: Session):
        hung = await s.run("hang")
        after = await s.run("ok")
        return hung, after, s.events

    hung, after, events = with_pool(folder, body)
    assert hung.timed_out is True and hung.error is None
    assert hung.measurements == {}
    assert [(line.level, line.message) for line in hung.logs] == [
        ("ERROR", "Phase timed out after 1 seconds")
    ]
    assert (hung.ended_at - hung.started_at).total_seconds() >= 0.6  # back-dated start
    warnings = [e for e in events if isinstance(e, LiveEngineWarning)]
    assert len(warnings) == 1 and "75%" in warnings[0].message
    assert not any(isinstance(e, LiveLog) and e.line.message == "75%" for e in events)
    assert _wait_gone(int(pidfile.read_text())), "the phase's child process survived the timeout"
    assert after.error is None and after.measurements["v"].value == 1.0


def test_worker_crashes_are_errors_and_the_pool_keeps_going(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("hard_exit", "segv", "null_read", "ok"),
        {
            "phases/hard_exit.py": "import os\n\ndef hard_exit(measurements):\n    measurements.before = 1\n    os._exit(7)\n",
            "phases/segv.py": "import os, signal, time\n\ndef segv():\n    os.kill(os.getpid(), signal.SIGSEGV)\n    time.sleep(30)  # the signal may land on another thread\n",
            "phases/null_read.py": "import ctypes\n\ndef null_read():\n    ctypes.string_at(0)\n",
            "phases/ok.py": "def ok(log):\n    log.info('alive')\n",
        },
    )
    hard_exit, segv, null_read, ok = run_phases(folder, "hard_exit", "segv", "null_read", "ok")
    assert hard_exit.error is not None and "exited with code 7" in hard_exit.error
    assert hard_exit.measurements["before"].value == 1.0  # data recorded before is kept
    assert segv.error is not None and "SIGSEGV" in segv.error
    assert null_read.error is not None and "SIGSEGV" in null_read.error
    assert "null_read" in null_read.error  # faulthandler's traceback names the phase
    assert ok.error is None and messages(ok) == ["alive"]
    assert hard_exit.logs[-1].level == "ERROR"


def test_a_million_lines_stay_bounded(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("flood"),
        {
            "phases/flood.py": """
            def flood(measurements):
                for i in range(200_000):
                    print(f"line {i}")
                measurements.done = True
            """
        },
    )

    async def body(s: Session):
        return await s.run("flood"), s.events

    result, events = with_pool(folder, body)
    assert result.error is None
    assert result.measurements["done"].value is True
    assert len(result.logs) == HEAD_LINES + TAIL_LINES + 1
    assert result.logs[0].message == "line 0"
    assert result.logs[HEAD_LINES - 1].message == f"line {HEAD_LINES - 1}"
    assert "log lines omitted" in result.logs[HEAD_LINES].message
    assert result.logs[-1].message == "line 199999"
    assert len(events) <= HEAD_LINES + TAIL_LINES + 2


def test_binary_garbage_and_endless_lines(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("garbage"),
        {
            "phases/garbage.py": """
            import os, random, sys

            def garbage(log):
                rnd = random.Random(1)
                sys.stdout.buffer.write(bytes(rnd.randrange(256) for _ in range(300_000)))
                print()
                os.write(1, bytes(rnd.randrange(256) for _ in range(300_000)) + b"\\n")
                sys.stdout.write("x" * 3_000_000 + "\\n")
                log.info("still here")
            """
        },
    )
    (result,) = run_phases(folder, "garbage")
    assert result.error is None, result.error
    assert "still here" in messages(result)
    for line in result.logs:
        assert len(line.message) <= LINE_CAP + 60
    assert any("\ufffd" in line.message for line in result.logs)  # invalid UTF-8 replaced
    assert any("characters cut" in line.message for line in result.logs)


def test_import_stall_watchdog(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("slow_import", "ok"),
        {
            "phases/slow_import.py": "import time\ntime.sleep(30)\n\ndef slow_import():\n    pass\n",
            "phases/ok.py": "def ok():\n    pass\n",
        },
    )
    slow, ok = run_phases(folder, "slow_import", "ok", import_stall_s=0.5)
    assert slow.error is not None and "Importing the phase module" in slow.error
    assert ok.error is None


def test_cancelling_an_attempt_kills_its_worker(make_procedure, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    folder = make_procedure(
        yaml_for("forever", "ok"),
        {
            "phases/forever.py": f"import os, time\n\ndef forever():\n    open({str(marker)!r}, 'w').write(str(os.getpid()))\n    time.sleep(600)\n",
            "phases/ok.py": "def ok():\n    pass\n",
        },
    )

    async def body(s: Session):
        task = asyncio.ensure_future(s.run("forever"))
        while not marker.exists() or not marker.read_text():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(marker.read_text()), await s.run("ok")

    pid, ok = with_pool(folder, body)
    assert _wait_gone(pid)
    assert ok.error is None


def test_parallel_workers(make_procedure, tmp_path: Path) -> None:
    # a and b wait for each other: this only finishes if they run at the same time
    folder = make_procedure(
        yaml_for("a", "b"),
        {
            "phases/a.py": f"""
            import os, time
            def a(log):
                open({str(tmp_path / 'a')!r}, 'w').close()
                while not os.path.exists({str(tmp_path / 'b')!r}):
                    time.sleep(0.01)
                log.info(os.environ["WORKER_ID"])
            """,
            "phases/b.py": f"""
            import os, time
            def b(log):
                open({str(tmp_path / 'b')!r}, 'w').close()
                while not os.path.exists({str(tmp_path / 'a')!r}):
                    time.sleep(0.01)
                log.info(os.environ["WORKER_ID"])
            """,
        },
    )

    async def body(s: Session):
        return await asyncio.wait_for(asyncio.gather(s.run("a"), s.run("b")), 60)

    a, b = with_pool(folder, body, size=2)
    assert {messages(a)[0], messages(b)[0]} == {"0", "1"}


def test_bad_interpreter_is_a_clear_error(make_procedure) -> None:
    folder = make_procedure(yaml_for("ok"), {"phases/ok.py": "def ok():\n    pass\n"})

    async def main():
        loaded = load_procedure(folder)
        object.__setattr__(loaded, "interpreter", folder / "no-such-python")
        pool = WorkerPool(loaded, 1, lambda e: None)
        with pytest.raises(WorkerStartError) as raised:
            await pool.start()
        await pool.start(wait=False)
        try:
            return str(raised.value), await pool.run_attempt(request(loaded, "ok"))
        finally:
            await pool.close()

    start_error, result = asyncio.run(main())
    assert "Could not start a worker" in start_error and "no-such-python" in start_error
    assert result.error is not None and "Could not start a worker" in result.error


def test_a_worker_that_dies_at_start_up_is_reported(make_procedure, tmp_path: Path) -> None:
    folder = make_procedure(yaml_for("ok"), {"phases/ok.py": "def ok():\n    pass\n"})
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'interpreter is broken' >&2\nexit 1\n")
    fake.chmod(0o755)

    async def main():
        loaded = load_procedure(folder)
        object.__setattr__(loaded, "interpreter", fake)
        pool = WorkerPool(loaded, 1, lambda e: None)
        try:
            await pool.start()
        except WorkerStartError as exc:
            return str(exc)
        finally:
            await pool.close()

    assert "interpreter is broken" in asyncio.run(main())


# --- shell phases ------------------------------------------------------------------


def test_shell_phase_output_exit_code_and_working_directory(make_procedure) -> None:
    folder = make_procedure(
        yaml_for(
            "  - {name: ok, executable: {command: 'echo out; echo err >&2; pwd', working_directory: sub}}",
            "  - {name: fails, executable: {command: 'echo bad; exit 3', shell: bash}}",
            "  - {name: env, executable: {command: 'echo ${PYTHONPATH:-unset} $PYTHONUNBUFFERED ${TOFU_TUI_TOKEN:-none}'}}",
        ),
        {"sub/keep.txt": "x"},
    )
    os.environ["PYTHONPATH"] = "/nonexistent"
    os.environ["TOFU_TUI_TOKEN"] = "secret"
    try:
        ok, fails, env = run_phases(folder, "ok", "fails", "env")
    finally:
        del os.environ["PYTHONPATH"]
        del os.environ["TOFU_TUI_TOKEN"]
    assert ok.exit_code == 0 and ok.error is None
    # stdout and stderr are separate pipes: their relative order is not defined
    assert sorted((line.level, line.message) for line in ok.logs) == sorted(
        [("INFO", "out"), ("ERROR", "err"), ("INFO", str((folder / "sub").resolve()))]
    )
    assert fails.exit_code == 3 and fails.error is None
    assert messages(fails, "INFO") == ["bad"]
    assert messages(env) == ["unset 1 none"]


def test_shell_phase_bad_shell_and_working_directory(make_procedure) -> None:
    folder = make_procedure(
        yaml_for(
            "  - {name: noshell, executable: {command: 'echo hi', shell: pwsh}}",
            "  - {name: nodir, executable: {command: 'echo hi', working_directory: missing/dir}}",
        ),
    )
    noshell, nodir = run_phases(folder, "noshell", "nodir")
    if noshell.exit_code is None:  # pwsh is rarely installed on Linux test machines
        assert noshell.error is not None and "'pwsh'" in noshell.error and "not found" in noshell.error
    assert nodir.error is not None and "missing/dir" in nodir.error and "does not exist" in nodir.error


def test_ui_only_phase_has_nothing_to_run(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("  - {name: look, ui: {components: [{type: text, default_value: hi}]}}")
    )
    (look,) = run_phases(folder, "look")
    assert look.error is None and look.signal is None and look.logs == []


def test_shell_phase_timeout_kills_background_children(make_procedure, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    folder = make_procedure(
        yaml_for(
            f"  - {{name: hang, timeout: 500ms, executable: {{command: 'sleep 600 & echo $! > {pidfile}; wait'}}}}",
        ),
    )
    (hang,) = run_phases(folder, "hang")
    assert hang.timed_out is True
    assert messages(hang) == ["Phase timed out after 1 seconds"]
    assert _wait_gone(int(pidfile.read_text()))


def test_shell_phase_flood_is_bounded(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("  - {name: flood, executable: {command: 'seq 1 100000; head -c 200000 /dev/urandom'}}"),
    )
    (flood,) = run_phases(folder, "flood")
    assert flood.exit_code == 0
    assert len(flood.logs) <= 10_000 + 2_000 + 2
    assert any("log lines omitted" in line.message for line in flood.logs)


def test_signal_name_for_killed_shell(make_procedure) -> None:
    folder = make_procedure(yaml_for("  - {name: killed, executable: {command: 'kill -9 $$'}}"))
    (killed,) = run_phases(folder, "killed")
    assert killed.exit_code == -signal.SIGKILL
    assert "SIGKILL" in messages(killed, "ERROR")[0]


def test_a_worker_killed_while_idle_is_replaced(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("pid"), {"phases/pid.py": "import os\n\ndef pid(log):\n    log.info(str(os.getpid()))\n"}
    )

    async def body(s: Session):
        first = await s.run("pid")
        pid = int(messages(first)[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(500):  # until the event loop has noticed the exit
            if all(w.process.returncode is not None for w in s.pool._workers):
                break
            await asyncio.sleep(0.01)
        return pid, await s.run("pid")

    pid, second = with_pool(folder, body)
    assert second.error is None
    assert int(messages(second)[0]) != pid


def test_prestarted_worker_is_adopted(make_procedure, tmp_path: Path) -> None:
    folder = make_procedure(
        yaml_for("pid"), {"phases/pid.py": "import os\n\ndef pid(log):\n    log.info(str(os.getpid()))\n"}
    )
    loaded = load_procedure(folder)
    early = prestart_worker(folder, loaded.interpreter)  # no event loop yet
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    stray = prestart_worker(other_dir, loaded.interpreter)

    async def main():
        pool = WorkerPool(loaded, 1, lambda e: None, prestarted=early)
        wrong = WorkerPool(loaded, 1, lambda e: None, prestarted=stray)  # another folder
        await pool.start()
        try:
            return await pool.run_attempt(request(loaded, "pid"))
        finally:
            await pool.close()
            await wrong.close()

    result = asyncio.run(main())
    assert messages(result) == [str(early.popen.pid)]
    assert stray.popen.poll() is not None  # not adopted: stopped


def test_concurrent_attempts_do_not_mix(make_procedure) -> None:
    folder = make_procedure(
        yaml_for("echo"),
        {
            "phases/echo.py": """
            import time

            def echo(run, measurements, log):
                log.info(run.job_id)
                time.sleep(0.001 * (run.retry_count % 3))
                print(run.job_id)
                measurements.n = run.retry_count
            """
        },
    )

    async def body(s: Session):
        return await asyncio.gather(*(s.run("echo", retry_count=i, job_id=f"job-{i}") for i in range(40)))

    results = with_pool(folder, body, size=4)
    for i, result in enumerate(results):
        assert result.error is None
        assert messages(result) == [f"job-{i}", f"job-{i}"]
        assert result.measurements["n"].value == float(i)


def test_an_oversized_message_is_an_error(make_procedure, monkeypatch) -> None:
    from tofu_tui.procedure import pool as pool_module

    monkeypatch.setattr(pool_module, "STREAM_LIMIT", 1024 * 1024)
    folder = make_procedure(
        yaml_for("huge", "ok"),
        {
            "phases/huge.py": "def huge(measurements):\n    measurements.big = list(range(400_000))\n",
            "phases/ok.py": "def ok():\n    pass\n",
        },
    )
    huge, ok = run_phases(folder, "huge", "ok")
    assert huge.error is not None and "larger than 1 MB" in huge.error
    assert ok.error is None


def test_workers_do_not_outlive_a_killed_engine(make_procedure, tmp_path: Path) -> None:
    import subprocess
    import sys

    pidfile = tmp_path / "worker.pid"
    folder = make_procedure(
        yaml_for("spin"),
        {"phases/spin.py": f"import os\n\ndef spin():\n    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n    while True:\n        pass\n"},
    )
    engine = tmp_path / "engine.py"
    engine.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.procedure.poolkit import run_phases\n"
        "run_phases(Path(sys.argv[1]), 'spin')\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(engine), str(folder)], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        end = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < end:
            time.sleep(0.02)
        worker_pid = int(pidfile.read_text())
    finally:
        proc.kill()
        proc.wait()
    assert _wait_gone(worker_pid, 10.0), "the worker survived its engine"


def test_own_attachment_folder_kept_only_when_it_holds_attachments(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        yaml_for("plain", "attaching"),
        {
            "phases/plain.py": "def plain():\n    pass\n",
            "phases/attaching.py": "def attaching(attach):\n    attach.data(b'hello', 'note.txt')\n",
        },
    )

    async def main(key: str) -> tuple[Path, list[Path]]:
        loaded = load_procedure(folder)
        pool = WorkerPool(loaded, 1, lambda event: None)  # no attachments_dir: its own temp folder
        await pool.start()
        try:
            result = await pool.run_attempt(request(loaded, key))
        finally:
            await pool.close()
        assert result.error is None, result.error
        return pool.attachments_dir, [a.path for a in result.attachments]

    empty_dir, none = asyncio.run(main("plain"))
    assert none == [] and not empty_dir.exists()  # nothing left behind in the temp folder
    kept_dir, (kept,) = asyncio.run(main("attaching"))
    assert kept.read_bytes() == b"hello" and kept.parent == kept_dir  # the caller's to move or clean
    kept.unlink()
    kept_dir.rmdir()


def test_a_worker_that_never_acknowledges_a_job_is_replaced(make_procedure) -> None:  # type: ignore[no-untyped-def]
    # §8 job acknowledgement (30 s; 0.5 s here): a frozen worker costs one attempt, not the run.
    folder = make_procedure(yaml_for("a"), {"phases/a.py": "def a(measurements):\n    measurements.x = 1\n"})

    async def body(session: Session) -> None:
        (frozen,) = session.pool._workers
        os.kill(frozen.pid, signal.SIGSTOP)
        # A group stop is asynchronous: wait until every thread of the worker has stopped.
        tasks = Path(f"/proc/{frozen.pid}/task")
        end = time.monotonic() + 10
        while not all(
            (t / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "T" for t in tasks.iterdir()
        ):
            assert time.monotonic() < end, "the worker did not stop"
            await asyncio.sleep(0.01)
        first = await session.run("a")
        assert first.error is not None and "did not acknowledge the job within 0.5 seconds" in first.error
        assert first.measurements == {}
        assert _wait_gone(frozen.pid)  # killed even though stopped
        second = await session.run("a")  # on the replacement
        assert second.error is None and second.measurements["x"].value == 1

    with_pool(folder, body, ack_s=0.5)
