"""Console under a log flood: key-to-screen latency, drain time, memory.

A procedure logs 100,000 lines as fast as it can (the event source never waits, the
worst case for the console). While they pour in, the pilot presses a key every few
milliseconds (`l`, which re-filters the whole scrollback and redraws the log title)
and we time each press from the key event to the first frame composed after the
key's action ran. Peers in the same run: the idle console (same keys, no flood), and Textual's RichLog
written once per line (the obvious alternative to our log pane), given three times
our drain time.

    /work/venv/bin/python benchmarks/bench_console.py [--lines 100000] [--presses 60]

Targets (issue 6): p99 under 100 ms while flooding, RSS under 250 MB, bounded
scrollback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import RichLog, Static

from tofu_tui.models.commands import Command
from tofu_tui.models.events import Event, PhaseLog, PhaseStarted, ProcedureRef, RunStarted
from tofu_tui.models.status import LinkedProcedure, StationStatus
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.backend import BackendMode

EXEC = "bench-0001"
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING")


class FloodBackend:
    """A station whose procedure logs `lines` lines without ever pausing."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.produced = 0
        self.done = asyncio.Event()

    @property
    def mode(self) -> BackendMode:
        return "attached"

    async def status(self) -> StationStatus:
        return StationStatus(station_name="bench", connected=True, procedures=[LinkedProcedure(id="p", name="Flood")])

    async def events(self) -> AsyncIterator[Event]:
        if not self.lines:
            self.done.set()
            await asyncio.Event().wait()
        yield RunStarted(execution_id=EXEC, seq=1, procedure=ProcedureRef(name="Flood", version="1"))
        yield PhaseStarted(execution_id=EXEC, seq=2, phase_key="flood", phase_name="Flood")
        for n in range(self.lines):
            self.produced += 1
            yield PhaseLog(
                execution_id=EXEC,
                seq=3 + n,
                phase_key="flood",
                level=LEVELS[n % len(LEVELS)],  # type: ignore[arg-type]
                message=f"sample {n} adc=0x{n * 2654435761 % 65536:04x} vbus=12.{n % 97:02d} V",
            )
        self.done.set()
        await asyncio.Event().wait()

    async def send(self, command: Command) -> str | None:
        return None

    async def close(self) -> None:
        pass


async def measure(lines: int, presses: int, gap_s: float) -> dict[str, Any]:
    backend = FloodBackend(lines)
    app = StationConsole(backend, status_interval=3600, freeze_gc=True)
    frames: list[float] = []
    actions: list[float] = []
    original_display = app._display
    original_cycle = app.action_cycle_level

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        original_display(screen, renderable)

    def cycle() -> None:
        original_cycle()
        actions.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    app.action_cycle_level = cycle  # type: ignore[method-assign]
    process = psutil.Process()
    peak_rss = process.memory_info().rss
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        for _ in range(presses):
            if lines and backend.done.is_set():
                break
            pressed = time.perf_counter()
            seen_actions = len(actions)
            assert app._driver is not None
            app._driver.send_message(events.Key("l", "l"))
            deadline = pressed + 5.0
            latency = None
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
                if len(actions) > seen_actions and frames and frames[-1] >= actions[seen_actions]:
                    latency = next(f for f in frames if f >= actions[seen_actions]) - pressed
                    break
            latencies.append(latency if latency is not None else 5.0)
            peak_rss = max(peak_rss, process.memory_info().rss)
            await asyncio.sleep(gap_s)
        await asyncio.wait_for(backend.done.wait(), timeout=600)
        drained = time.perf_counter() - started
        await pilot.pause()
        app.flush()
        peak_rss = max(peak_rss, process.memory_info().rss)
        buffer = app.state.log
        result = {
            "lines": lines,
            "produced": backend.produced,
            "presses": len(latencies),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": sorted(latencies)[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
            "max_ms": max(latencies) * 1000,
            "drain_s": drained,
            "peak_rss_mb": peak_rss / 2**20,
            "scrollback": len(buffer.lines),
            "capacity": buffer.capacity,
            "total_logged": buffer.total,
        }
    return result


class RichLogPeer(App[None]):
    """The obvious alternative: Textual's RichLog, one `write` per line as it arrives."""

    BINDINGS: ClassVar = [("l", "toggle", "toggle")]

    def __init__(self, backend: FloodBackend) -> None:
        super().__init__()
        self.backend = backend
        self.flag = False

    def compose(self) -> ComposeResult:
        yield Static("off", id="flag")
        yield RichLog(max_lines=5000, id="log")

    async def on_mount(self) -> None:
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        log = self.query_one(RichLog)
        count = 0
        async for event in self.backend.events():
            if isinstance(event, PhaseLog):
                log.write(f"{event.ts[11:23]} {event.level:<8} [{event.phase_key}] {event.message}")
            count += 1
            if count % 200 == 0:
                await asyncio.sleep(0)

    def action_toggle(self) -> None:
        self.flag = not self.flag
        self.query_one("#flag", Static).update("on" if self.flag else "off")


async def measure_peer(lines: int, gap_s: float, budget_s: float) -> dict[str, Any]:
    backend = FloodBackend(lines)
    app = RichLogPeer(backend)
    frames: list[float] = []
    actions: list[float] = []
    original_display = app._display
    original_toggle = app.action_toggle

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        original_display(screen, renderable)

    def toggle() -> None:
        original_toggle()
        actions.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    app.action_toggle = toggle  # type: ignore[method-assign]
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        while not backend.done.is_set() and time.perf_counter() - started < budget_s:
            pressed = time.perf_counter()
            seen = len(actions)
            assert app._driver is not None
            app._driver.send_message(events.Key("l", "l"))
            latency = None
            while time.perf_counter() < pressed + 5.0:
                await asyncio.sleep(0.001)
                if len(actions) > seen and frames and frames[-1] >= actions[seen]:
                    latency = next(f for f in frames if f >= actions[seen]) - pressed
                    break
            latencies.append(latency if latency is not None else 5.0)
            await asyncio.sleep(gap_s)
        elapsed = time.perf_counter() - started
    return {
        "produced": backend.produced,
        "elapsed_s": elapsed,
        "presses": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": sorted(latencies)[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=20)
    args = parser.parse_args()
    idle = asyncio.run(measure(0, args.presses, args.gap_ms / 1000))
    flood = asyncio.run(measure(args.lines, 10**6, args.gap_ms / 1000))
    print(f"console key-to-screen latency ({psutil.cpu_count()} CPUs, load {psutil.getloadavg()[0]:.1f})")
    print(f"  idle  (peer): {idle['presses']:4d} presses  p50 {idle['p50_ms']:6.1f} ms  p99 {idle['p99_ms']:6.1f} ms  max {idle['max_ms']:6.1f} ms")
    print(
        f"  flood       : {flood['presses']:4d} presses  p50 {flood['p50_ms']:6.1f} ms  p99 {flood['p99_ms']:6.1f} ms  max {flood['max_ms']:6.1f} ms"
        f"   (target p99 < 100 ms)"
    )
    print(
        f"  flood of {flood['produced']:,} lines drained in {flood['drain_s']:.2f} s "
        f"({flood['produced'] / flood['drain_s']:,.0f} lines/s)"
    )
    print(
        f"  scrollback kept {flood['scrollback']:,} of {flood['total_logged']:,} lines (capacity {flood['capacity']:,})"
        f"; peak RSS {flood['peak_rss_mb']:.0f} MB (target < 250 MB)"
    )
    peer = asyncio.run(measure_peer(args.lines, args.gap_ms / 1000, budget_s=max(flood["drain_s"] * 3, 10)))
    print(
        f"  peer: RichLog, one write per line: {peer['produced']:,} lines in {peer['elapsed_s']:.2f} s "
        f"({peer['produced'] / peer['elapsed_s']:,.0f} lines/s); {peer['presses']} presses"
        f"  p50 {peer['p50_ms']:6.1f} ms  p99 {peer['p99_ms']:6.1f} ms"
    )
    ok = flood["p99_ms"] < 100 and flood["peak_rss_mb"] < 250 and flood["scrollback"] <= flood["capacity"] * 1.1
    print("  result:", "within targets" if ok else "OUTSIDE targets")


if __name__ == "__main__":
    main()
