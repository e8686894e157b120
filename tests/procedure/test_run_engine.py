"""`start_run` / `RunHandle` in process: the API every front end uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.procedure.runhelp import UNIT
from tofu_tui.models.events import PhaseFinished, PhaseStarted, RunFinished, RunStarted, UiRequest
from tofu_tui.procedure.execute import RunOptions, RunResult, start_run
from tofu_tui.procedure.load import load_procedure


class Collector:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, predicate: Any, timeout: float = 30) -> Any:
        async def find() -> Any:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(find(), timeout)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def start(folder: Path, **options: Any) -> tuple[Any, Collector]:
    sink = Collector()
    handle = await start_run(load_procedure(folder), RunOptions(**options), sink)
    return handle, sink


async def finish(handle: Any) -> RunResult:
    result: RunResult = await asyncio.wait_for(handle.wait(), 60)
    return result


def phases(result: RunResult, index: int = 0) -> list[tuple[str, str]]:
    return [(p.name, p.outcome) for p in result.runs[index].phases]


async def test_events_are_model_objects_with_gap_free_seq(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: E\n" + UNIT + "main: [{name: A, python: phases.a:a}, {name: B, python: phases.a:a}]\n",
        {"phases/a.py": "def a(log):\n    log.info('hi')\n"},
    )
    handle, sink = await start(folder, execution_id="exec-1")
    result = await finish(handle)
    assert result.outcome == "PASS" and result.execution_id == "exec-1"
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    assert {e.execution_id for e in sink.events} == {"exec-1"}
    assert isinstance(sink.events[0], RunStarted) and isinstance(sink.events[-1], RunFinished)
    assert sink.events[-1].run == result.runs[0].model_dump(mode="json", exclude_unset=True) | {"procedure_id": None}


async def test_answer_refuses_with_a_reason_and_keeps_the_prompt_open(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: Q\n"
        + UNIT
        + """
main:
  - name: Ask
    ui: {components: [{type: number_input, key: n, required: true, min: 1, max: 5, bind: measurements.n}]}
    measurements: [{name: N, validators: [{operator: "<=", expected_value: 3}]}]
""",
    )
    handle, sink = await start(folder)
    request = await sink.wait_for(lambda e: isinstance(e, UiRequest))
    assert handle.answer("nope", {"n": 1}) is not None
    reason = handle.answer(request.request_id, {"n": 9})
    assert reason is not None and "n" in reason
    assert handle.answer(request.request_id, {"n": 2}) is None
    assert handle.answer(request.request_id, {"n": 2}) is not None  # closed now
    result = await finish(handle)
    assert result.outcome == "PASS"
    (m,) = result.runs[0].phases[0].measurements
    assert (m.name, m.measured_value, m.outcome) == ("n", 2.0, "PASS")


async def test_stop_aborts_and_teardown_still_runs(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: S\n"
        + UNIT
        + """
main:
  - {name: Wait, python: phases.s:wait}
  - {name: After, python: phases.s:wait, depends_on: [wait]}
teardown: [{name: Clean, python: phases.s:clean}]
""",
        {"phases/s.py": "import time\n\ndef wait():\n    time.sleep(0.5)\n\ndef clean(log):\n    log.info('cleaned')\n"},
    )
    handle, sink = await start(folder)
    await sink.wait_for(lambda e: isinstance(e, PhaseStarted) and e.phase_key == "wait")
    handle.stop()
    result = await finish(handle)
    assert result.outcome == "ABORTED"
    assert phases(result) == [("Wait", "FAIL"), ("Clean", "PASS")]
    assert [e.outcome for e in sink.of(PhaseFinished)] == ["ABORTED", "PASS"]


async def test_kill_runs_nothing_more_not_even_teardown(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: K\n" + UNIT + "main: [{name: Hang, python: phases.k:hang}]\nteardown: [{name: Clean, python: phases.k:hang}]\n",
        {"phases/k.py": "import time\n\ndef hang():\n    time.sleep(60)\n"},
    )
    handle, sink = await start(folder)
    await sink.wait_for(lambda e: isinstance(e, PhaseStarted))
    handle.kill()
    result = await finish(handle)
    assert result.outcome == "ABORTED"
    assert [e.phase_key for e in sink.of(PhaseStarted)] == ["hang"]
    assert isinstance(sink.events[-1], RunFinished)


async def test_phases_see_earlier_results_unit_and_execution_wide_isolation(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: R\n"
        + UNIT
        + """
setup:
  - {name: Rig, python: phases.r:rig, scope: execution}
  - {name: Prep, python: phases.r:prep}
main:
  - {name: Use, python: phases.r:use}
""",
        {
            "phases/r.py": """
            def rig(measurements):
                measurements.temp = 21.5

            def prep(rig, measurements):
                measurements.seen = rig.measurements.temp

            def use(prep, rig, unit):
                assert prep.outcome == "pass" and prep.measurements.seen == 21.5
                assert unit.serial_number == "SN1"
            """
        },
    )
    handle, _ = await start(folder)
    result = await finish(handle)
    assert result.outcome == "PASS", result.runs[0].phases
    assert phases(result) == [("Rig", "PASS"), ("Prep", "PASS"), ("Use", "PASS")]


async def test_worker_crash_is_error_and_the_run_goes_on(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: C\n" + UNIT + "execution: {on_first_failure: continue, workers: 1}\n"
        "main: [{name: Crash, python: phases.c:crash}, {name: Fine, python: phases.c:fine}]\n",
        {"phases/c.py": "import os\n\ndef crash():\n    os._exit(7)\n\ndef fine():\n    pass\n"},
    )
    handle, _ = await start(folder)
    result = await finish(handle)
    assert result.outcome == "ERROR"
    assert phases(result) == [("Crash", "ERROR"), ("Fine", "PASS")]
    assert result.runs[0].phases[0].docstring


async def test_ui_only_phase_without_ui_passes_and_display_prompt_does_not_wait(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: U\n" + UNIT + "main:\n  - {name: Marker}\n  - {name: Notice, ui: {components: [{type: text, default_value: Hi}]}}\n",
    )
    handle, sink = await start(folder, headless=True)
    result = await finish(handle)
    assert phases(result) == [("Marker", "PASS"), ("Notice", "PASS")]
    assert len(sink.of(UiRequest)) == 1


async def test_requires_input_display_prompt_waits_and_closing_it_stops(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: W\n" + UNIT + "main:\n  - {name: Confirm, ui: {requires_input: true, components: [{type: text, default_value: 'Ready?'}]}}\n",
    )
    handle, sink = await start(folder)
    request = await sink.wait_for(lambda e: isinstance(e, UiRequest))
    assert handle.answer(request.request_id, {}) is None
    result = await finish(handle)
    assert phases(result) == [("Confirm", "PASS")]
    # headless: fail fast, naming the phase
    handle, _ = await start(folder, headless=True)
    result = await finish(handle)
    assert phases(result) == [("Confirm", "ERROR")]
    assert "confirm" in (result.runs[0].phases[0].docstring or "")


async def test_slot_first_runs_a_slot_to_the_end_before_the_next(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: SF\n"
        + UNIT
        + "execution: {strategy: slot_first, workers: 4, slots: [{name: One}, {name: Two}]}\n"
        + "main: [{name: A, python: phases.a:a}, {name: B, python: phases.a:a}]\nteardown: [{name: T, python: phases.a:a}]\n",
        {"phases/a.py": "def a():\n    pass\n"},
    )
    handle, sink = await start(folder)
    result = await finish(handle)
    assert result.outcome == "PASS" and len(result.runs) == 2
    order = [(e.slot, e.phase_key) for e in sink.of(PhaseStarted)]
    slots = [slot for slot, _ in order]
    assert slots == ["one"] * 3 + ["two"] * 3
    assert [r.slot_key for r in result.runs] == ["one", "two"]


async def test_stop_while_teardown_runs_lets_it_finish_and_runs_the_rest(make_procedure) -> None:  # type: ignore[no-untyped-def]
    folder = make_procedure(
        "name: TS\n"
        + UNIT
        + """
main: [{name: M, python: phases.t:quick}]
teardown:
  - {name: Slow Park, python: phases.t:slow}
  - {name: Last, python: phases.t:quick, depends_on: [slow_park]}
""",
        {"phases/t.py": "import time\n\ndef slow(log):\n    time.sleep(0.6)\n    log.info('parked')\n\ndef quick():\n    pass\n"},
    )
    handle, sink = await start(folder)
    await sink.wait_for(lambda e: isinstance(e, PhaseStarted) and e.phase_key == "slow_park")
    handle.stop()
    result = await finish(handle)
    assert result.outcome == "ABORTED"
    names = [name for name, _ in phases(result)]
    assert names == ["M", "Slow Park", "Last"]
    assert phases(result)[2] == ("Last", "PASS")
    assert not any(p.outcome == "ERROR" for p in result.runs[0].phases)
