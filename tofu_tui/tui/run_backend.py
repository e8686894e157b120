"""`tofu-tui run PATH --tui`: the operator console over one run of a procedure folder.

No station here: the console shows the live run, its prompts and its result; stop and
kill work on it; station actions (pull, queue, another run) are refused with the
reason. The run starts before the console draws, so its events wait in a buffer for
the console's subscription. Quitting while it runs asks first, then stops it the way
the stop key does (teardown runs, the run ends ABORTED).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tofu_tui.models.commands import Command, KillCommand, StopCommand, UiResponseCommand
from tofu_tui.models.events import Event
from tofu_tui.models.status import DeploymentInfo, LinkedProcedure, StationStatus
from tofu_tui.tui.backend import BackendMode

STOP_RUN_GRACE_S = 10.0


class OneRunBackend:
    """`StationBackend` over a `RunHandle` (tofu_tui.procedure.execute.start_run)."""

    def __init__(self, loaded: Any, options: Any) -> None:
        self.loaded = loaded
        self.options = options
        self.handle: Any = None
        self.result: Any = None
        self.started_at = datetime.now(UTC)
        self._buffer: list[Event] | None = []  # events before the first subscriber
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> OneRunBackend:
        from tofu_tui.procedure.execute import start_run

        self.handle = await start_run(self.loaded, self.options, self._emit)
        self._task = asyncio.create_task(self._wait())
        return self

    def _emit(self, event: Event) -> None:
        # The engine may emit from its worker threads.
        self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event | None) -> None:
        if self._buffer is not None and event is not None:
            self._buffer.append(event)
        for queue in self._queues:
            queue.put_nowait(event)

    async def _wait(self) -> None:
        assert self.handle is not None
        self.result = await self.handle.wait()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def mode(self) -> BackendMode:
        return "in-process"

    async def status(self) -> StationStatus:
        name = self.loaded.spec.name
        version = DeploymentInfo(id="local", sha="-------", message=str(self.loaded.directory), branch=None,
                                 deployed_at=self.started_at)
        return StationStatus(
            station_name=f"{name} · one run", daemon_started_at=self.started_at,
            procedures=[LinkedProcedure(id="local", name=name, active=version, runs_today=1)],
            run_in_flight=self.handle.execution_id if self.handle is not None and self.running else None)

    async def events(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        if self._buffer is not None:
            for early in self._buffer:
                queue.put_nowait(early)
            self._buffer = None
        self._queues.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._queues.remove(queue)

    async def send(self, command: Command) -> str | None:
        if isinstance(command, UiResponseCommand | StopCommand | KillCommand) and not self.running:
            return "The run has ended."
        if isinstance(command, UiResponseCommand):
            refused: str | None = self.handle.answer(command.request_id, command.values)
            return refused
        if isinstance(command, StopCommand):
            self.handle.stop()
            return None
        if isinstance(command, KillCommand):
            self.handle.kill()
            return None
        return (f"This console shows one run of {self.loaded.directory}; it has no station to "
                f"{command.name.lower()}. Quit, then `tofu-tui run` again (or `tofu-tui` for the station).")

    async def close(self) -> None:
        """Stop the run if it still runs (killed if teardown hangs), and wait for its end."""
        if self._task is None:
            return
        if self.running:
            self.handle.stop()
            finished, _ = await asyncio.wait({self._task}, timeout=STOP_RUN_GRACE_S)
            if not finished:
                self.handle.kill()
        with contextlib.suppress(Exception):
            await self._task
        for queue in self._queues:
            queue.put_nowait(None)


def run_in_console(path: Path, options: Any) -> int:
    """Load PATH, open the console over its run; the exit status of run-protocol.md."""
    import sys

    from tofu_tui.procedure.load import ProcedureLoadError, load_procedure
    from tofu_tui.procedure.outcomes import EXIT_CODES
    from tofu_tui.tui.app import StationConsole

    try:
        loaded = load_procedure(path)
    except ProcedureLoadError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 2
    options.headless = False  # the console answers prompts

    async def main() -> int:
        backend = await OneRunBackend(loaded, options).start()
        await StationConsole(backend).run_async()
        await backend.close()  # the console closed it already; waits for the run's end
        result = backend.result
        if result is None:
            return 1
        print(f"{loaded.spec.name}: {result.outcome}", file=sys.stderr)
        if not result.runs and result.outcome == "ERROR":
            return 2
        return int(EXIT_CODES[result.outcome])

    return asyncio.run(main())
