"""Starting a worker process: cheap to import (no asyncio), so a front end can start the
first worker before its own heavy imports (see `prestart_worker`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# Loaded as a module rather than run as a script: a script is compiled from source on
# every start (~40 ms for worker.py), a module uses its cached bytecode. `-c` puts the
# working directory (the procedure's) first on sys.path, where a procedure's `code.py` or
# `queue.py` would shadow the standard library the worker imports: the worker's own folder
# stands there instead, as for a script, until main() puts the procedure directory there.
_WORKER_BOOTSTRAP = (
    "import sys, os; sys.path[0] = os.path.dirname(sys.argv[1]); "
    "import importlib.util as u; s = u.spec_from_file_location('_tofu_tui_worker', sys.argv[1]); "
    "m = u.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
    "del sys.argv[0]; m.main()"
)


@dataclass
class PrestartedWorker:
    """A worker started ahead of its pool (prestart_worker); a pool adopts it in start()."""

    directory: Path
    interpreter: Path
    popen: subprocess.Popen[bytes]
    channel: socket.socket

    def discard(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.channel.close()
        with contextlib.suppress(Exception):
            self.popen.wait(1)


def launch_worker(
    directory: Path, interpreter: Path, worker_id: int
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    parent, child = socket.socketpair()
    try:
        popen = subprocess.Popen(
            [str(interpreter), "-c", _WORKER_BOOTSTRAP, str(WORKER_SCRIPT), str(directory), str(child.fileno())],
            cwd=directory,
            env=child_environment(worker_id),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(child.fileno(),),
            start_new_session=True,
        )
    except OSError as exc:
        parent.close()
        raise RuntimeError(
            f"Could not start a worker with the interpreter {interpreter}: {exc}. "
            "Check the procedure's venv (or `uv python find`)."
        ) from None
    finally:
        child.close()
    return popen, parent


def prestart_worker(directory: Path, interpreter: Path) -> PrestartedWorker:
    """Start one worker process now, without an event loop (e.g. while the CLI is still
    importing and loading the procedure); pass it to WorkerPool(prestarted=...)."""
    directory = Path(directory).resolve()
    popen, channel = launch_worker(directory, Path(interpreter), 0)
    return PrestartedWorker(directory, Path(interpreter), popen, channel)


def child_environment(worker_id: int | None = None) -> dict[str, str]:
    """§1 child environment: no PYTHONHOME/PYTHONPATH, unbuffered UTF-8 output."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    env.pop("TOFU_TUI_TOKEN", None)  # a station secret: procedures never need it
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if worker_id is not None:
        env["WORKER_ID"] = str(worker_id)
    return env
