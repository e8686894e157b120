"""Commands a station accepts: from the dashboard stream, the heartbeat reply, the
local control socket (console, CLI) alike. Names follow `spec/api.md`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Command(BaseModel):
    # The dashboard may send fields we do not know yet; ignore them rather than refuse.
    model_config = ConfigDict(extra="ignore")

    id: str | None = None


class RunCommand(_Command):
    name: Literal["Run"] = "Run"
    procedure_id: str
    serial_number: str | None = None
    part_number: str | None = None
    revision_number: str | None = None
    batch_number: str | None = None
    ui_values: dict[str, dict[str, Any]] | None = None


class StopCommand(_Command):
    name: Literal["Stop"] = "Stop"


class KillCommand(_Command):
    name: Literal["Kill"] = "Kill"


class PullCommand(_Command):
    name: Literal["Pull"] = "Pull"


class UiResponseCommand(_Command):
    name: Literal["UiResponse"] = "UiResponse"
    request_id: str
    values: dict[str, Any] = Field(default_factory=dict)


class QueueRetryCommand(_Command):
    name: Literal["QueueRetry"] = "QueueRetry"
    queue_id: int | None = None


class QueueDropCommand(_Command):
    name: Literal["QueueDrop"] = "QueueDrop"
    queue_id: int


class ExitCommand(_Command):
    name: Literal["Exit"] = "Exit"


Command = Annotated[
    RunCommand
    | StopCommand
    | KillCommand
    | PullCommand
    | UiResponseCommand
    | QueueRetryCommand
    | QueueDropCommand
    | ExitCommand,
    Field(discriminator="name"),
]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(data: str | bytes | dict[str, Any]) -> Command:
    if isinstance(data, dict):
        return COMMAND_ADAPTER.validate_python(data)
    return COMMAND_ADAPTER.validate_json(data)
