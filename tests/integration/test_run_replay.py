"""What a console attaching mid-run is given first: the run in flight so far, bounded."""

from __future__ import annotations

from tofu_tui.models.events import (
    PhaseLog,
    PhaseStarted,
    ProcedureRef,
    RunFinished,
    RunStarted,
    UiRequest,
)
from tofu_tui.station.bus import RunReplay


def started(execution: str, slot: str | None = None) -> RunStarted:
    return RunStarted(execution_id=execution, seq=1, procedure=ProcedureRef(name="Board"), slot=slot)


def test_replay_holds_the_run_in_flight_in_order_with_bounded_logs() -> None:
    replay = RunReplay(logs=3)
    replay.record(started("e1"))
    replay.record(PhaseStarted(execution_id="e1", seq=2, phase_key="p", phase_name="P"))
    for seq in range(3, 13):
        replay.record(PhaseLog(execution_id="e1", seq=seq, message=f"line {seq}"))
    replay.record(UiRequest(execution_id="e1", seq=13, request_id="r1", phase_key="p", components=[]))
    replay.record(PhaseLog(execution_id="other", seq=14, message="not this run"))
    events = replay.events()
    assert [event.seq for event in events] == [1, 2, 10, 11, 12, 13]
    assert isinstance(events[-1], UiRequest)


def test_replay_is_empty_between_runs_and_keeps_every_slot_until_all_finished() -> None:
    replay = RunReplay()
    assert replay.events() == []
    replay.record(started("e2", "A"))
    replay.record(started("e2", "B"))
    replay.record(RunFinished(execution_id="e2", seq=5, outcome="PASS", run={}, slot="A"))
    assert [getattr(event, "slot", None) for event in replay.events()[:2]] == ["A", "B"]
    replay.record(RunFinished(execution_id="e2", seq=6, outcome="PASS", run={}, slot="B"))
    assert replay.events() == []
    replay.record(started("e3"))
    assert [event.execution_id for event in replay.events()] == ["e3"]
