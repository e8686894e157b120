"""§6 scheduling rules, on the job graph alone (no workers): order, concurrency,
retries, cancellation, stop and the shutdown teardown budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from tofu_tui.procedure.outcomes import FinalAttempt, run_outcome
from tofu_tui.procedure.scheduler import AttemptOutcome, Job, Scheduler
from tofu_tui.procedure.schema import ProcedureSpec


def spec(text: str) -> ProcedureSpec:
    return ProcedureSpec.model_validate(yaml.safe_load(text))


class Bench:
    """Plays scripted outcomes per phase key and records what ran when."""

    def __init__(self, script: dict[str, list[str]] | None = None, delay: dict[str, float] | None = None):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.delay = delay or {}
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.peak = 0

    def label(self, job: Job) -> str:
        return job.key if job.slot in (None, "default") else f"{job.key}@{job.slot}"

    async def __call__(self, job: Job) -> AttemptOutcome:
        self.started.append(self.label(job))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay.get(job.key, 0.01))
        finally:
            self.running -= 1
        plan = self.script.get(job.key)
        outcome = plan.pop(0) if plan else "PASS"
        self.finished.append(self.label(job))
        return AttemptOutcome(outcome, "boom" if outcome == "ERROR" else None)  # type: ignore[arg-type]


async def run(text: str, bench: Bench, **kwargs: Any) -> Scheduler:
    procedure = spec(text)
    slots = [s.key for s in procedure.execution.slots]
    sched = Scheduler(procedure, slots, bench, **kwargs)
    await asyncio.wait_for(sched.run(), 20)
    return sched


def outcome_of(sched: Scheduler, slot_index: int = 0) -> str:
    return run_outcome(
        [FinalAttempt(a.outcome, a.error) for _, a in sched.final_attempts(slot_index)],
        operator_stop=sched.operator_stop,
        stop_action_without_teardown=sched.stop_action_without_teardown,
    )


BASE = "name: P\n"


async def test_implicit_stage_order_and_parallel_setup() -> None:
    bench = Bench()
    await run(
        BASE
        + """
setup: [{name: s1}, {name: s2}]
main: [{name: m1}, {name: m2}]
teardown: [{name: t1}]
""",
        bench,
    )
    assert set(bench.started[:2]) == {"s1", "s2"}
    assert set(bench.started[2:4]) == {"m1", "m2"}
    assert bench.started[4] == "t1"
    assert bench.peak == 2  # setup phases ran in parallel: no implicit order within a stage
    assert bench.finished.index("m1") < bench.started.index("t1")


async def test_execution_wide_setup_first_and_teardown_last_across_slots() -> None:
    bench = Bench()
    await run(
        BASE
        + """
execution: {slots: [{name: A}, {name: B}]}
setup: [{name: rig, scope: execution}, {name: fixture}]
main: [{name: m}]
teardown: [{name: unclamp}, {name: rig_off, scope: all}]
""",
        bench,
    )
    assert bench.started[0] == "rig"
    assert bench.started[-1] == "rig_off"
    for slot in ("a", "b"):
        assert bench.started.index(f"fixture@{slot}") < bench.started.index(f"m@{slot}")
        assert bench.finished.index(f"m@{slot}") < bench.started.index(f"unclamp@{slot}")
    assert bench.started.count("rig") == 1


async def test_workers_cap_concurrency() -> None:
    bench = Bench()
    await run(BASE + "execution: {workers: 2}\nmain: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}]\n", bench)
    assert bench.peak == 2
    assert sorted(bench.started) == ["a", "b", "c", "d", "e"]


async def test_no_execution_block_means_four_workers() -> None:
    bench = Bench()
    await run(BASE + "main: [" + ", ".join(f"{{name: p{i}}}" for i in range(7)) + "]\n", bench)
    assert bench.peak == 4


async def test_depends_on_waits_through_retries_and_delay() -> None:
    bench = Bench({"a": ["RETRY", "RETRY", "PASS"]})
    await run(
        BASE
        + """
execution: {workers: 4}
main:
  - {name: a, retry: {limit: 3, delay: 50ms}}
  - {name: b, depends_on: [a]}
  - {name: c}
""",
        bench,
    )
    assert bench.started.count("a") == 3
    # b starts only after a's final attempt, c is independent and not held back
    assert bench.started.index("b") > len(bench.started) - 2
    assert bench.started.index("c") < bench.started.index("b")


async def test_depends_on_orders_but_does_not_gate() -> None:
    bench = Bench({"a": ["FAIL"]})
    sched = await run(
        BASE + "execution: {on_first_failure: continue}\nmain: [{name: a}, {name: b, depends_on: [a]}]\n",
        bench,
    )
    assert bench.started == ["a", "b"]
    assert outcome_of(sched) == "FAIL"


async def test_forward_depends_on_is_honoured_q2() -> None:
    bench = Bench()
    await run(BASE + "main: [{name: a, depends_on: [b]}, {name: b}]\n", bench)
    assert bench.started == ["b", "a"]


async def test_queue_order_and_retries_jump_the_front() -> None:
    bench = Bench({"a": ["RETRY", "PASS"]})
    await run(BASE + "execution: {workers: 1}\nmain: [{name: a}, {name: b}, {name: c}]\n", bench)
    assert bench.started == ["a", "a", "b", "c"]


async def test_phase_first_and_slot_first_queue_orders() -> None:
    text = "execution: {workers: 1, strategy: %s, slots: [{name: A}, {name: B}]}\nmain: [{name: x}, {name: y}]\nteardown: [{name: t}]\n"
    bench = Bench()
    await run(BASE + text % "phase_first", bench)
    assert bench.started == ["x@a", "x@b", "y@a", "y@b", "t@a", "t@b"]
    bench = Bench()
    await run(BASE + text % "slot_first", bench)
    assert bench.started == ["x@a", "y@a", "t@a", "x@b", "y@b", "t@b"]


async def test_slot_setup_failure_cancels_only_that_slot_and_teardown_runs() -> None:
    class SlotBench(Bench):
        async def __call__(self, job: Job) -> AttemptOutcome:
            result = await super().__call__(job)
            if job.key == "clamp" and job.slot == "a":
                return AttemptOutcome("FAIL")
            return result

    bench = SlotBench()
    sched = await run(
        BASE
        + """
execution: {on_first_failure: continue, slots: [{name: A}, {name: B}]}
setup: [{name: clamp}]
main: [{name: m}]
teardown: [{name: t}]
""",
        bench,
    )
    assert "m@a" not in bench.started
    assert "m@b" in bench.started
    assert {"t@a", "t@b"} <= set(bench.started)
    assert outcome_of(sched, 0) == "FAIL"
    assert outcome_of(sched, 1) == "PASS"


async def test_execution_wide_setup_failure_cancels_every_slot_even_with_then_continue() -> None:
    bench = Bench({"rig": ["ERROR"]})
    await run(
        BASE
        + """
execution: {on_first_failure: continue, slots: [{name: A}, {name: B}]}
setup: [{name: rig, scope: execution, then: {error: continue}}]
main: [{name: m}]
teardown: [{name: t}]
""",
        bench,
    )
    assert bench.started[0] == "rig"
    assert not [s for s in bench.started if s.startswith("m@")]
    assert {"t@a", "t@b"} <= set(bench.started)


async def test_stop_action_cancels_queued_keeps_failure_outcome_q1() -> None:
    bench = Bench({"a": ["FAIL"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a}, {name: b}]\nteardown: [{name: t}]\n", bench)
    assert bench.started == ["a", "t"]
    assert outcome_of(sched) == "FAIL"  # Q1: not ABORTED


async def test_timeout_with_stop_keeps_timeout_q1() -> None:
    bench = Bench({"a": ["TIMEOUT"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a}, {name: b}]\n", bench)
    assert bench.started == ["a"]
    assert outcome_of(sched) == "TIMEOUT"


async def test_then_pass_stop_aborts_when_no_teardown_queued() -> None:
    bench = Bench()
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a, then: {pass: stop}}, {name: b}]\n", bench)
    assert bench.started == ["a"]
    assert outcome_of(sched) == "STOP"


async def test_then_pass_stop_with_teardown_queued_passes() -> None:
    bench = Bench()
    sched = await run(
        BASE + "execution: {workers: 1}\nmain: [{name: a, then: {pass: stop}}, {name: b}]\nteardown: [{name: t}]\n",
        bench,
    )
    assert bench.started == ["a", "t"]
    assert outcome_of(sched) == "PASS"


async def test_phase_stop_aborts_run() -> None:
    bench = Bench({"a": ["STOP"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a}, {name: b}]\nteardown: [{name: t}]\n", bench)
    assert bench.started == ["a", "t"]
    assert outcome_of(sched) == "STOP"


async def test_then_fail_retry_uses_the_limit_then_on_first_failure() -> None:
    bench = Bench({"a": ["FAIL", "FAIL", "FAIL"]})
    sched = await run(
        BASE + "execution: {workers: 1}\nmain: [{name: a, retry: {limit: 2}, then: {fail: retry}}, {name: b}]\n",
        bench,
    )
    # 1 + 2 retries; the last retry is suppressed (no attempts left): the run continues
    assert bench.started == ["a", "a", "a", "b"]
    assert outcome_of(sched) == "FAIL"


async def test_then_error_continue_overrides_on_first_failure() -> None:
    bench = Bench({"a": ["ERROR"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a, then: {error: continue}}, {name: b}]\n", bench)
    assert bench.started == ["a", "b"]
    assert outcome_of(sched) == "ERROR"


async def test_skip_ignores_then() -> None:
    bench = Bench({"a": ["SKIP"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a, then: {pass: stop}}, {name: b}]\n", bench)
    assert bench.started == ["a", "b"]
    assert outcome_of(sched) == "PASS"


async def test_default_retry_limit_is_three() -> None:
    bench = Bench({"a": ["RETRY"] * 10})
    await run(BASE + "main: [{name: a}]\n", bench)
    # phase.retry() beyond the limit is FAIL in the executor; here RETRY outcomes stop at the limit
    assert bench.started.count("a") == 4


async def test_retry_runs_when_only_teardown_is_queued_q3() -> None:
    bench = Bench({"a": ["RETRY", "PASS"]})
    sched = await run(BASE + "execution: {workers: 1}\nmain: [{name: a}]\nteardown: [{name: t}]\n", bench)
    assert bench.started == ["a", "a", "t"]
    assert outcome_of(sched) == "PASS"


async def test_operator_stop_cancels_queue_lets_running_finish_and_runs_teardown() -> None:
    bench = Bench(delay={"slow": 0.3})
    procedure = spec(BASE + "execution: {workers: 1}\nmain: [{name: slow}, {name: later}]\nteardown: [{name: t}]\n")
    shutdowns: list[int] = []

    async def on_shutdown() -> None:
        shutdowns.append(1)

    sched = Scheduler(procedure, ["default"], bench, on_shutdown=on_shutdown, stop_grace_s=5)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(0.1)
    sched.stop()
    await asyncio.wait_for(task, 10)
    assert bench.started == ["slow", "t"]
    assert bench.finished[0] == "slow"  # the running phase finished
    assert shutdowns == [1]  # teardown got fresh workers
    assert outcome_of(sched) == "STOP"


async def test_shutdown_teardown_budget_marks_unfinished_teardown_error() -> None:
    bench = Bench(delay={"t1": 5, "t2": 5, "t3": 5})
    procedure = spec(BASE + "main: [{name: m}]\nteardown: [{name: t1}, {name: t2}, {name: t3}]\n")
    recorded: list[tuple[str, str]] = []

    def unfinished(job: Job, reason: str) -> AttemptOutcome:
        recorded.append((job.key, reason))
        return AttemptOutcome("ERROR", reason)

    sched = Scheduler(procedure, ["default"], bench, record_unfinished=unfinished, teardown_budget_s=0.3)
    sched.stop()
    await asyncio.wait_for(sched.run(), 10)
    assert bench.started[:2] in (["t1", "t2"], ["t2", "t1"])  # 2 fresh workers only
    assert sorted(k for k, _ in recorded) == ["t1", "t2", "t3"]
    assert all(r.startswith("Teardown did not finish") for _, r in recorded)
    finals = {job.key: job.attempts[-1].outcome for job in sched.jobs if job.attempts}
    assert finals == {"t1": "ERROR", "t2": "ERROR", "t3": "ERROR"}
    assert "m" not in bench.started


async def test_kill_runs_nothing_more() -> None:
    bench = Bench(delay={"slow": 5})
    procedure = spec(BASE + "execution: {workers: 1}\nmain: [{name: slow}, {name: later}]\nteardown: [{name: t}]\n")
    sched = Scheduler(procedure, ["default"], bench)
    task = asyncio.ensure_future(sched.run())
    await asyncio.sleep(0.05)
    sched.kill()
    await asyncio.wait_for(task, 5)
    assert bench.started == ["slow"]  # neither the queued phase nor teardown ran
    assert bench.finished == []


async def test_cycle_in_setup_does_not_deadlock() -> None:
    bench = Bench()
    await run(BASE + "setup: [{name: a, depends_on: [b]}, {name: b, depends_on: [a]}]\nmain: [{name: m}]\n", bench)
    assert sorted(bench.started) == ["a", "b", "m"]


@pytest.mark.parametrize("strategy", ["phase_first", "slot_first"])
async def test_every_job_runs_once_per_slot(strategy: str) -> None:
    bench = Bench()
    await run(
        BASE
        + f"execution: {{strategy: {strategy}, slots: [{{name: A}}, {{name: B}}, {{name: C}}]}}\n"
        + "setup: [{name: s}]\nmain: [{name: m1}, {name: m2, depends_on: [m1]}]\nteardown: [{name: t}]\n",
        bench,
    )
    assert len(bench.started) == 12
    for slot in "abc":
        assert bench.started.index(f"m1@{slot}") < bench.started.index(f"m2@{slot}")


async def test_retry_is_suppressed_during_a_shutdown_and_the_attempt_stays_final() -> None:
    bench = Bench({"stopper": ["STOP"], "flaky": ["FAIL", "PASS"]}, delay={"stopper": 0.01, "flaky": 0.1})
    sched = await run(
        BASE
        + "execution: {workers: 2}\nmain: [{name: stopper}, {name: flaky, then: {fail: retry}}, {name: later, depends_on: [flaky]}]\n"
        + "teardown: [{name: t, then: {pass: retry}}]\n",
        bench,
    )
    # flaky failed while the stop was in progress: no retry; teardown may still retry
    assert bench.started.count("flaky") == 1
    assert "later" not in bench.started
    assert bench.started.count("t") == 4  # teardown retries as configured (1 + default limit 3)
    assert outcome_of(sched) == "STOP"
