"""Helpers for worker/pool tests: run phases of a real procedure folder on a real pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tofu_tui.procedure.load import LoadedProcedure, load_procedure
from tofu_tui.procedure.pool import (
    AttemptRequest,
    AttemptResult,
    LiveEvent,
    PhaseResultView,
    WorkerPool,
)


def phase_of(loaded: LoadedProcedure, key: str) -> Any:
    for phase in [*loaded.spec.setup, *loaded.spec.main, *loaded.spec.teardown]:
        if phase.key == key:
            return phase
    raise KeyError(key)


def request(
    loaded: LoadedProcedure,
    key: str,
    *,
    retry_count: int = 0,
    retry_limit: int = 3,
    unit: dict[str, Any] | None = None,
    run_metadata: dict[str, Any] | None = None,
    results: dict[str, PhaseResultView] | None = None,
    plugs: dict[str, Any] | None = None,
    slot_id: str = "default",
    job_id: str | None = None,
) -> AttemptRequest:
    phase = phase_of(loaded, key)
    deadline = None if phase.timeout_ms is None else time.monotonic() + phase.timeout_ms / 1000
    return AttemptRequest(
        phase=phase,
        slot=None,
        retry_count=retry_count,
        retry_limit=retry_limit,
        deadline=deadline,
        unit=unit if unit is not None else {"serial_number": "SN1", "part_number": "PN1", "sub_units": {}, "metadata": {}},
        run_metadata=run_metadata if run_metadata is not None else {},
        results=results or {},
        plugs=plugs or {},
        slot_id=slot_id,
        job_id=job_id or f"{key}-{retry_count}",
    )


class Session:
    """A pool on a loaded procedure, with every live event recorded."""

    def __init__(self, loaded: LoadedProcedure, pool: WorkerPool, events: list[LiveEvent]) -> None:
        self.loaded = loaded
        self.pool = pool
        self.events = events

    async def run(self, key: str, **kwargs: Any) -> AttemptResult:
        return await self.pool.run_attempt(request(self.loaded, key, **kwargs))


def with_pool(
    folder: Path, body: Callable[[Session], Awaitable[Any]], *, size: int = 1, **pool_kwargs: Any
) -> Any:
    async def main() -> Any:
        loaded = load_procedure(folder)
        events: list[LiveEvent] = []
        pool = WorkerPool(loaded, size, events.append, attachments_dir=folder.parent / "attachments", **pool_kwargs)
        await pool.start()
        try:
            return await body(Session(loaded, pool, events))
        finally:
            await pool.close()

    return asyncio.run(main())


def run_phases(folder: Path, *keys: str, size: int = 1, **pool_kwargs: Any) -> list[AttemptResult]:
    async def body(session: Session) -> list[AttemptResult]:
        return [await session.run(key) for key in keys]

    results: list[AttemptResult] = with_pool(folder, body, size=size, **pool_kwargs)
    return results


def messages(result: AttemptResult, level: str | None = None) -> list[str]:
    return [line.message for line in result.logs if level is None or line.level == level]


def yaml_for(*phases: str, extra: str = "") -> str:
    """procedure.yaml with one main phase per `key` (python: phases/<key>.py) or full spec."""
    lines = ["name: test", "main:"]
    for spec in phases:
        if spec.lstrip().startswith(("-", "{")):
            lines.append(spec)
        else:
            lines.append(f"  - {{name: {spec}, python: phases.{spec}}}")
    return "\n".join(lines) + "\n" + extra
