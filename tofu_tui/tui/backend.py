"""What the console needs from a station, and nothing more.

The console talks to a station through this one interface, in the shared wire models
only, so the same screens run attached to a daemon (control-socket client) or over an
engine in this process. Implementations live with the station; the console never
imports them directly (see `launch.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol, runtime_checkable

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event
from tofu_tui.models.status import StationStatus

BackendMode = Literal["attached", "in-process"]


@runtime_checkable
class StationBackend(Protocol):
    """A station as the console sees it.

    - `mode`: "attached" when a daemon owns the station (quitting the console only
      detaches), "in-process" when the engine runs inside the console's process
      (quitting stops the station).
    - `status()`: a fresh snapshot; raises `BackendUnavailable` when the station
      cannot be reached.
    - `events()`: every event from now on, in order, until `close()`; a new call
      starts a new subscription. Attaching mid-run, it first replays the run in
      flight (`run_started` and what followed, open `ui_request`s) so the console can
      draw it. Ends when the station goes away (or raises `BackendUnavailable`).
    - `send(command)`: None when the station accepted the command, else the reason
      it refused, in a sentence an operator can act on. A refused answer names its
      fields the engine's way, `"key: message; key2: message"`; the form shows each
      part under its field.
    - `close()`: detach; never stops an attached daemon.
    """

    @property
    def mode(self) -> BackendMode: ...

    async def status(self) -> StationStatus: ...

    def events(self) -> AsyncIterator[Event]: ...

    async def send(self, command: Command) -> str | None: ...

    async def close(self) -> None: ...


class BackendUnavailable(Exception):
    """The station could not be reached; the message says what to do."""
