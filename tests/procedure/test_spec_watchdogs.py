"""procedure-format §8 worker handshake and §10 "nothing is uploaded after a worker
start failure", with real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest

from tests.procedure.poolkit import yaml_for
from tests.procedure.runhelp import UNIT, of_type, run_json
from tofu_tui.procedure.load import load_procedure
from tofu_tui.procedure.pool import WorkerPool, WorkerStartError


def test_a_worker_that_never_answers_its_handshake_is_killed_and_reported(make_procedure, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(yaml_for("ok"), {"phases/ok.py": "def ok():\n    pass\n"})
    pid_file = tmp_path / "pid"
    silent = tmp_path / "python"
    silent.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    silent.chmod(0o755)

    async def main() -> str:
        loaded = load_procedure(folder)
        object.__setattr__(loaded, "interpreter", silent)
        pool = WorkerPool(loaded, 1, lambda e: None, handshake_s=0.5)
        try:
            with pytest.raises(WorkerStartError) as raised:
                await pool.start()
            return str(raised.value)
        finally:
            await pool.close()

    message = asyncio.run(main())
    assert "did not start" in message and "did not answer within 0.5 s" in message
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_worker_start_failure_runs_nothing_and_uploads_nothing(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Broken Env\n" + UNIT + "main:\n  - {name: M, python: phases.m:m}\n",
        {"phases/m.py": "def m():\n    pass\n", ".venv/bin/python": "#!/bin/sh\necho 'interpreter is broken' >&2\nexit 1\n"},
    )
    (folder / ".venv" / "bin" / "python").chmod(0o755)
    proc, events = run_json(folder)
    assert proc.returncode == 2, proc.stderr
    (error,) = of_type(events, "error")
    assert "could not start" in error["message"] and "interpreter is broken" in error["message"]
    assert not of_type(events, "phase_started") and not of_type(events, "run_finished")


def test_a_venv_without_a_runnable_python_is_named_in_a_warning(make_procedure) -> None:  # type: ignore[no-untyped-def]
    # A venv committed or copied from another machine: its python link points nowhere.
    # §1's walk passes over it; the technician is told, with the interpreter used instead.
    folder = make_procedure("name: Venv\n" + UNIT + "main:\n  - {name: M, python: phases.m:m}\n", {"phases/m.py": "def m():\n    pass\n"})
    (folder / "venv" / "bin").mkdir(parents=True)
    (folder / "venv" / "bin" / "python").symlink_to("/nonexistent/python3.9")
    proc, _ = run_json(folder)
    assert proc.returncode == 0, proc.stderr
    assert f"{folder / 'venv'}: skipped: this virtual environment has no runnable Python" in proc.stderr
    assert "the procedure runs on " in proc.stderr


def test_import_watchdog_is_reset_by_output_and_ignores_the_body(make_procedure) -> None:  # type: ignore[no-untyped-def]
    from tests.procedure.poolkit import run_phases

    folder = make_procedure(
        yaml_for("chatty_import", "slow_body", "silent_import"),
        {
            # a long import that keeps printing: each line resets the §8 no-traffic window
            "phases/chatty_import.py": "import time\nfor i in range(6):\n    print('loading', i)\n    time.sleep(0.2)\n\ndef chatty_import():\n    pass\n",
            # the window covers the import only, not the phase body
            "phases/slow_body.py": "import time\n\ndef slow_body():\n    time.sleep(1.3)\n",
            "phases/silent_import.py": "import time\ntime.sleep(30)\n\ndef silent_import():\n    pass\n",
        },
    )
    chatty, slow_body, silent = run_phases(folder, "chatty_import", "slow_body", "silent_import", import_stall_s=1.0)
    assert chatty.error is None, chatty.error
    assert [line.message for line in chatty.logs] == [f"loading {i}" for i in range(6)]
    assert slow_body.error is None, slow_body.error
    assert silent.error is not None and "Importing the phase module" in silent.error
