"""Start the operator console: attach to the station daemon, else run in process.

The console only knows `StationBackend`. Two adapters provide it:
- `tofu_tui.tui.daemon_backend.connect() -> StationBackend | None`: the control-socket
  client; None when no daemon is running (raise `BackendUnavailable` when one runs
  but cannot be reached).
- `tofu_tui.tui.local_backend.start() -> StationBackend`: the station engine in this
  process.
They are looked up at run time so the console ships (and is tested) before them.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from tofu_tui.tui.backend import BackendUnavailable, StationBackend

DAEMON_ADAPTER = "tofu_tui.tui.daemon_backend"
LOCAL_ADAPTER = "tofu_tui.tui.local_backend"


def _adapter(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value


async def open_backend() -> StationBackend:
    """The daemon if one runs, else the in-process engine; BackendUnavailable says why not."""
    daemon = _adapter(DAEMON_ADAPTER)
    if daemon is not None:
        backend = await _maybe_await(daemon.connect())
        if backend is not None:
            return backend  # type: ignore[no-any-return]
    local = _adapter(LOCAL_ADAPTER)
    if local is not None:
        return await _maybe_await(local.start())  # type: ignore[no-any-return]
    if daemon is None:
        raise BackendUnavailable(
            "This build of tofu-tui cannot reach a station yet: the console's daemon and "
            "in-process adapters are not installed. Use `tofu-tui --headless` and `tofu-tui status` meanwhile."
        )
    raise BackendUnavailable(
        "No station daemon is running and this build cannot run the station in process. "
        "Start it with `tofu-tui --headless` (or `tofu-tui service start`), then run `tofu-tui` again."
    )


def run_console() -> int:
    from tofu_tui.tui.app import StationConsole

    async def main() -> int:
        try:
            backend = await open_backend()
        except BackendUnavailable as exc:
            print(f"tofu-tui: {exc}", file=sys.stderr)
            return 1
        await StationConsole(backend, freeze_gc=True).run_async()
        return 0

    return asyncio.run(main())
