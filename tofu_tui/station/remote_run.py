"""Runs started from outside the daemon: `tofu-tui run --procedure` through a running
daemon (its events followed live over the control socket), and `tofu-tui run --upload`
putting a finished local run into the station's upload queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from tofu_tui.models.commands import KillCommand, RunCommand
from tofu_tui.models.events import Event, RunFinished, RunStarted, UploadQueued
from tofu_tui.models.run import RunCreate
from tofu_tui.station.config import ConfigError, load_config
from tofu_tui.station.control import ControlClient, ControlError
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.queue import AttachmentFile, UploadQueue

NO_EVENT_AFTER_SUBMIT_S = 90.0  # procedure-format §8: then the run is killed


class _Slots:
    """A start with slots is one execution with a run_started and a run_finished per
    slot (every run_started comes first): it is over at the last run_finished, and its
    outcome is the worst of the slots', as for `tofu-tui run`."""

    def __init__(self) -> None:
        self.started = 0
        self.finished: list[RunFinished] = []

    def see(self, event: Event) -> RunFinished | None:
        """The run's result once its last slot finished, else None."""
        if isinstance(event, RunStarted):
            self.started += 1
        elif isinstance(event, RunFinished):
            self.finished.append(event)
            if len(self.finished) >= self.started:
                from tofu_tui.procedure.outcomes import worst_run_outcome

                return event.model_copy(update={"outcome": worst_run_outcome([e.outcome for e in self.finished])})
        return None


async def run_via_daemon(paths: StationPaths, command: RunCommand, on_event: Callable[[Event], None], *,
                         first_event_s: float = NO_EVENT_AFTER_SUBMIT_S) -> RunFinished:
    """Ask the daemon to run the active deployment of a linked procedure (id, name or
    identifier in `command.procedure_id`) and follow it to its end.

    Raises ControlError when no daemon runs, CommandRefused with the daemon's reason
    (unknown procedure, a run already in flight, ...), and ControlError when the daemon
    accepted the run but sent none of its events within `first_event_s` (§8): the run
    is killed then, so a wedged engine never holds the bench."""
    client = await ControlClient(paths).connect()
    try:
        await client.subscribe()  # before the command: no event of the run is missed
        answer = await client.command(command)
        execution_id = answer["execution_id"]
        events = aiter(client.events())
        seen = False
        slots = _Slots()
        while True:
            try:
                async with asyncio.timeout(None if seen else first_event_s):
                    event = await anext(events)
            except StopAsyncIteration:
                break
            except TimeoutError:
                with contextlib.suppress(ControlError):
                    await asyncio.wait_for(client.command(KillCommand()), 10)
                raise ControlError(
                    f"The station daemon accepted the run but sent no event of it for {first_event_s:g} s; "
                    "the run was killed. Check the daemon's log (`tofu-tui doctor`) and restart it if it is stuck."
                ) from None
            if event.execution_id != execution_id:
                continue
            seen = True
            on_event(event)
            if (result := slots.see(event)) is not None:
                return result
        raise ControlError("The station daemon stopped during the run; its result is in the daemon's queue "
                           "if it finished.")
    finally:
        await client.close()


async def run_in_process(paths: StationPaths, command: RunCommand,
                         on_event: Callable[[Event], None]) -> RunFinished:
    """No daemon runs: start the station engine in this process for one run (the same
    code as the daemon: deployment lookup, persist first, one upload attempt), then stop.
    A run that could not be uploaded now stays queued for the next daemon."""
    import asyncio

    from tofu_tui.station.api_client import ApiError
    from tofu_tui.station.daemon import StationDaemon

    failure: list[str] = []
    daemon = StationDaemon(paths, handle_signals=False,
                           say=lambda level, name, fields: failure.append(str(fields.get("message", name)))
                           if level == "error" else None)
    task = asyncio.create_task(daemon.run())
    started = asyncio.create_task(daemon.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        raise ControlError(" ".join(failure) or "The station engine could not start.")
    events = daemon.subscribe()
    finished: RunFinished | None = None
    try:
        await daemon.sync(force=False)  # the latest deployment if the server answers; else the local one
        execution_id = (await daemon.handle_command(command))["execution_id"]
        slots = _Slots()
        while finished is None:
            event = await events.get()
            if event is None:
                break
            if event.execution_id == execution_id:
                on_event(event)
                finished = slots.see(event)
        while daemon.in_flight is not None:  # every slot's result committed to the queue
            await asyncio.sleep(0.05)
        try:
            await asyncio.to_thread(daemon.drainer.drain, 10)
        except ApiError:
            pass  # stays queued; the daemon uploads it later
    finally:
        daemon.request_stop("one-shot run done")
        await task
    if finished is None:
        raise ControlError("The run ended without a result.")
    return finished


def queue_local_run(paths: StationPaths, run: RunCreate, attachments: Iterable[AttachmentFile] = (),
                    *, execution_id: str = "") -> UploadQueued:
    """Commit a finished run to this station's upload queue; the daemon uploads it."""
    try:
        installation = load_config(paths).installation_id
    except ConfigError as exc:
        raise ConfigError(f"Uploading needs an enrolled station. {exc}") from None
    queue = UploadQueue(paths.ensure(), installation)
    try:
        return queue.enqueue(run.model_dump(mode="json", exclude_none=True), attachments, execution_id=execution_id)
    finally:
        queue.close()
