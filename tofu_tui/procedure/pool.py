"""Worker processes and phase attempts: the pool that runs one attempt at a time per worker.

Stub published for the run team; bodies follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tofu_tui.procedure.evaluate import MeasurementRecord
    from tofu_tui.procedure.load import LoadedProcedure
    from tofu_tui.procedure.schema import PhaseSpec

Signal = Literal["fail", "skip", "retry", "stop"]


@dataclass
class LogLine:
    level: str  # DEBUG / INFO / WARNING / ERROR / CRITICAL
    timestamp: datetime
    message: str
    source_file: str  # relative to the procedure directory when inside it; "" if unknown
    line_number: int  # 0 if unknown


@dataclass
class AttachmentRecord:
    name: str
    path: Path  # a file the engine owns (copied at attach time)
    size: int


@dataclass
class PhaseResultView:
    """What a later phase sees of an earlier phase's latest attempt (§4 rule 2)."""

    outcome: str  # lowercase: "pass", "fail", ...
    duration_ms: float
    measurements: dict[str, MeasurementRecord] = field(default_factory=dict)


@dataclass
class PlugAddress:
    """Where a plug process listens; plugs.py (helper A) fills it in."""

    key: str
    address: str  # "host:port" or a socket path, whatever plughost.PlugProxy accepts
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttemptRequest:
    phase: PhaseSpec
    slot: str | None
    retry_count: int
    retry_limit: int
    deadline: float | None  # time.monotonic() deadline from timeout_ms, None = none
    unit: dict[str, Any]
    run_metadata: dict[str, Any]
    results: dict[str, PhaseResultView]
    plugs: dict[str, Any]  # plug key -> PlugAddress (or whatever plugs.py hands out)
    slot_id: str
    job_id: str


@dataclass
class AttemptResult:
    started_at: datetime
    ended_at: datetime
    error: str | None
    timed_out: bool
    signal: Signal | None
    signal_message: str | None
    exit_code: int | None
    measurements: dict[str, MeasurementRecord]
    logs: list[LogLine]
    attachments: list[AttachmentRecord]
    unit: dict[str, Any]
    run_metadata: dict[str, Any]


# --- live events: emitted while an attempt runs; each names its job ------------------


@dataclass
class LiveLog:
    job_id: str
    line: LogLine


@dataclass
class LiveMeasurement:
    job_id: str
    key: str
    record: MeasurementRecord


@dataclass
class LiveUiUpdate:
    job_id: str
    key: str
    value: Any


@dataclass
class LiveAttachment:
    job_id: str
    attachment: AttachmentRecord


@dataclass
class LiveEngineWarning:
    """Engine-internal notice (e.g. the 75 % timeout warning): not a phase log, not uploaded."""

    job_id: str
    message: str


LiveEvent = LiveLog | LiveMeasurement | LiveUiUpdate | LiveAttachment | LiveEngineWarning


class WorkerPool:
    def __init__(
        self,
        loaded: LoadedProcedure,
        size: int,
        emit: Callable[[LiveEvent], None],
        *,
        attachments_dir: Path | None = None,
    ) -> None:
        self.loaded = loaded
        self.size = size
        self.emit = emit
        self.attachments_dir = attachments_dir

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def run_attempt(self, request: AttemptRequest) -> AttemptResult:
        raise NotImplementedError
