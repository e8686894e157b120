"""§6 scheduling: jobs, their order, dispatch, retries, cancellation and teardown.

One job per (phase, slot), or one per execution-wide setup/teardown phase. The scheduler
knows nothing about workers or prompts: it calls `run_job(job)` for one attempt and gets
back the attempt's outcome; everything else (what runs when, retries, what a *stop*
cancels, the shutdown teardown budget) is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tofu_tui.procedure.outcomes import (
    DEFAULT_RETRY_LIMIT,
    EngineOutcome,
    NextAction,
    next_action,
)

if TYPE_CHECKING:
    from tofu_tui.procedure.schema import PhaseSpec, ProcedureSpec

Stage = Literal["setup", "main", "teardown"]
JobState = Literal["waiting", "running", "delayed", "done", "cancelled"]

STAGES: tuple[Stage, ...] = ("setup", "main", "teardown")
SHUTDOWN_TEARDOWN_WORKERS = 2
SHUTDOWN_TEARDOWN_BUDGET_S = 30.0
# After an operator stop, running phases get this long to end on their own (their prompts
# are closed at once) before their workers are killed so teardown can start.
STOP_GRACE_S = 3.0


class JobBlocked(Exception):
    """Raised by `run_job` when the job cannot run at all (its plug failed to start):
    it is cancelled, never uploaded."""


@dataclass(frozen=True)
class AttemptOutcome:
    """What the scheduler needs back from one attempt."""

    outcome: EngineOutcome
    error: str | None = None
    record: Any = None  # the executor's full attempt record, kept in order


@dataclass
class Job:
    id: str
    phase: PhaseSpec
    slot: str | None  # slot key; None for an execution-wide phase
    stage: Stage
    rank: float  # queue position; retries jump to the front
    slot_index: int  # -1 for execution-wide
    deps: set[str] = field(default_factory=set)
    _state: JobState = "waiting"
    retry_count: int = 0
    attempts: list[AttemptOutcome] = field(default_factory=list)
    final_action: NextAction | None = None
    _observer: Callable[[Job, JobState, JobState], None] | None = None

    @property
    def state(self) -> JobState:
        return self._state

    @state.setter
    def state(self, new: JobState) -> None:
        old, self._state = self._state, new
        if self._observer is not None and old != new:
            self._observer(self, old, new)

    @property
    def key(self) -> str:
        return self.phase.key

    @property
    def execution_wide(self) -> bool:
        return self.slot_index < 0

    @property
    def final(self) -> bool:
        return self.state in ("done", "cancelled")

    @property
    def retry_limit(self) -> int:
        return self.phase.retry.limit if self.phase.retry else DEFAULT_RETRY_LIMIT


def _execution_wide(phase: PhaseSpec, stage: Stage) -> bool:
    return stage != "main" and getattr(phase, "scope", "slot") == "execution"


def build_jobs(spec: ProcedureSpec, slots: list[str | None]) -> list[Job]:
    """All jobs with their explicit `depends_on` edges, in queue order (§6)."""
    strategy = spec.execution.strategy
    rank = itertools.count()
    jobs: list[Job] = []
    ids: set[str] = set()

    def add(phase: PhaseSpec, stage: Stage, slot: str | None, slot_index: int) -> None:
        job_id = f"{stage}:{phase.key}@{slot if slot is not None else '*'}"
        # setup/teardown keys are not checked for duplicates: keep ids unique anyway
        n = 2
        base = job_id
        while job_id in ids:
            job_id = f"{base}#{n}"
            n += 1
        ids.add(job_id)
        jobs.append(Job(job_id, phase, slot, stage, next(rank), slot_index))

    def stage_phases(stage: Stage) -> list[PhaseSpec]:
        return list(getattr(spec, stage))

    for phase in stage_phases("setup"):
        if _execution_wide(phase, "setup"):
            add(phase, "setup", None, -1)
    if strategy == "slot_first":
        for index, slot in enumerate(slots):
            for stage in STAGES:
                for phase in stage_phases(stage):
                    if not _execution_wide(phase, stage):
                        add(phase, stage, slot, index)
    else:
        for stage in STAGES:
            for phase in stage_phases(stage):
                if _execution_wide(phase, stage):
                    continue
                for index, slot in enumerate(slots):
                    add(phase, stage, slot, index)
    for phase in stage_phases("teardown"):
        if _execution_wide(phase, "teardown"):
            add(phase, "teardown", None, -1)

    # Explicit edges resolve within a slot, or among execution-wide phases; forward edges
    # count too (Q2). An edge to a later stage could never be satisfied: ignored.
    order = {stage: i for i, stage in enumerate(STAGES)}
    by_key: dict[tuple[int, str], list[Job]] = {}
    for job in jobs:
        by_key.setdefault((job.slot_index, job.key), []).append(job)
    for job in jobs:
        for dep_key in job.phase.depends_on:
            candidates = [
                p
                for p in by_key.get((job.slot_index, dep_key), [])
                if p is not job and order[p.stage] <= order[job.stage]
            ]
            if not candidates:
                continue  # disabled or unresolved: ignored
            same_stage = [p for p in candidates if p.stage == job.stage]
            job.deps.add((same_stage or candidates)[0].id)
    return jobs


RunJob = Callable[[Job], Awaitable[AttemptOutcome]]


class Scheduler:
    """Runs the jobs of one execution. Drive it with `await run()`."""

    def __init__(
        self,
        spec: ProcedureSpec,
        slots: list[str | None],
        run_job: RunJob,
        *,
        workers: int | None = None,
        on_stop_action: Callable[[], None] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        record_unfinished: Callable[[Job, str], AttemptOutcome] | None = None,
        on_job_final: Callable[[Job], None] | None = None,
        teardown_budget_s: float = SHUTDOWN_TEARDOWN_BUDGET_S,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.spec = spec
        self.jobs = build_jobs(spec, slots)
        self.by_id = {job.id: job for job in self.jobs}
        self.run_job = run_job
        self.workers = workers or spec.execution.workers
        self.on_stop_action = on_stop_action  # close prompts of running phases
        self.on_shutdown = on_shutdown  # swap in fresh teardown workers
        self.record_unfinished = record_unfinished
        self.on_job_final = on_job_final
        self.teardown_budget_s = teardown_budget_s
        self.stop_grace_s = stop_grace_s
        self.strategy = spec.execution.strategy
        self.slot_count = len(slots)
        self.active_slot = 0  # slot_first: the slot currently allowed to run
        self._front = itertools.count(1)
        self._order = list(self.jobs)  # queue order; re-sorted when a retry jumps the front
        self._order_dirty = False
        self._scan_from = 0  # every job before this index is running or final
        # incremental counts, kept by Job.state's observer
        self._open_groups: dict[tuple[int, str], int] = {}
        self._busy: dict[int, int] = {}  # slot -> running non-teardown jobs
        self._n_open = 0
        self._n_running = 0
        self._n_delayed = 0
        for job in self.jobs:
            group = (job.slot_index, job.stage)
            self._open_groups[group] = self._open_groups.get(group, 0) + 1
            self._n_open += 1
            job._observer = self._state_changed
        self._tasks: dict[asyncio.Task[AttemptOutcome], Job] = {}
        self._timers: set[asyncio.Task[None]] = set()
        # The loop sleeps on one future, woken by a finished job or an external change:
        # a fresh waiter task per turn costs a trivial phase measurable time.
        self._wakeup: asyncio.Future[None] | None = None
        self._woken = False
        self._failure: BaseException | None = None  # raised by bookkeeping in a done callback
        # run-level facts for §7.4
        self.operator_stop = False
        self.abort_error = False  # plug start failure: teardown on fresh workers, run ERROR
        self.stop_action_taken = False
        self.stop_action_without_teardown = False
        self.killed = False
        self._shutdown_started = False
        self._shutdown_deadline: float | None = None
        self._stop_requested_at: float | None = None

    # --- external control ---------------------------------------------------------
    def stop(self) -> None:
        """Operator stop: queued non-teardown jobs are cancelled; teardown still runs."""
        if self.operator_stop or self.killed:
            return
        self.operator_stop = True
        self._stop_requested_at = time.monotonic()
        self._cancel_queued(lambda job: True)
        if self.on_stop_action:
            self.on_stop_action()
        self._wake()

    def abort(self) -> None:
        """A plug failed to start: nothing new is dispatched, teardown still runs."""
        if self.abort_error or self.killed:
            return
        self.abort_error = True
        self._stop_requested_at = time.monotonic()
        self._cancel_queued(lambda job: True)
        self._wake()

    def kill(self) -> None:
        """Force kill: nothing more runs, not even teardown."""
        self.killed = True
        for job in self.jobs:
            if job.state in ("waiting", "delayed"):
                job.state = "cancelled"
        for task in list(self._tasks):
            task.cancel()
        for timer in list(self._timers):
            timer.cancel()
        self._wake()

    @property
    def shutting_down(self) -> bool:
        return self.operator_stop or self.abort_error or self.stop_action_taken

    # --- readiness ----------------------------------------------------------------
    def _cancel_queued(self, which: Callable[[Job], bool]) -> None:
        for job in self.jobs:
            if job.stage != "teardown" and job.state in ("waiting", "delayed") and which(job):
                if job.state == "delayed" and job.attempts:
                    job.state = "done"  # its recorded attempt becomes the final one
                else:
                    job.state = "cancelled"

    def slot_open(self, slot_index: int) -> int:
        """Jobs of a slot that are not final yet."""
        return sum(self._open_groups.get((slot_index, stage), 0) for stage in STAGES)

    def _state_changed(self, job: Job, old: JobState, new: JobState) -> None:
        final = ("done", "cancelled")
        if old not in final and new in final:
            group = (job.slot_index, job.stage)
            self._open_groups[group] -= 1
            self._n_open -= 1
        for state, delta in ((old, -1), (new, 1)):
            if state == "running":
                self._n_running += delta
                if job.stage != "teardown":
                    self._busy[job.slot_index] = self._busy.get(job.slot_index, 0) + delta
            elif state == "delayed":
                self._n_delayed += delta

    def _snapshot(self) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
        """Unfinished jobs per (slot, stage), and running non-teardown jobs per slot."""
        return self._open_groups, self._busy

    def _implicitly_ready(
        self, job: Job, snapshot: tuple[dict[tuple[int, str], int], dict[int, int]] | None = None
    ) -> bool:
        open_groups, busy = snapshot or self._snapshot()
        if job.execution_wide:
            if job.stage == "setup":
                return True
            # execution-wide teardown: after everything else
            return sum(open_groups.values()) == open_groups.get((-1, "teardown"), 0)
        if self.strategy == "slot_first" and job.slot_index != self.active_slot:
            return False
        if open_groups.get((-1, "setup")):
            return False
        mine = job.slot_index
        if job.stage == "setup":
            return True
        if job.stage == "main":
            return not open_groups.get((mine, "setup"))
        # per-slot teardown: after the slot's setup and main, and no running job of the slot
        if open_groups.get((mine, "setup")) or open_groups.get((mine, "main")):
            return False
        return not busy.get(mine)

    def _ready(
        self,
        job: Job,
        *,
        ignore_edges: bool = False,
        snapshot: tuple[dict[tuple[int, str], int], dict[int, int]] | None = None,
    ) -> bool:
        if job.state != "waiting" or not self._implicitly_ready(job, snapshot):
            return False
        return ignore_edges or all(self.by_id[d].final for d in job.deps)

    def _advance_slot(self) -> None:
        if self.strategy != "slot_first":
            return
        while self.active_slot < self.slot_count - 1:
            slot_open = sum(self._open_groups.get((self.active_slot, st), 0) for st in STAGES)
            if not slot_open and not self._n_running:
                self.active_slot += 1
            else:
                return

    def _capacity(self) -> int:
        if self._shutdown_started:
            return SHUTDOWN_TEARDOWN_WORKERS
        return self.workers

    def _pick(self) -> Job | None:
        if self._order_dirty:
            self._order.sort(key=lambda j: j.rank)
            self._order_dirty = False
            self._scan_from = 0
        order = self._order
        while self._scan_from < len(order) and order[self._scan_from].state in ("running", "done", "cancelled"):
            self._scan_from += 1
        snapshot = self._snapshot()
        any_waiting = False
        for job in itertools.islice(order, self._scan_from, None):
            if job.state != "waiting":
                continue
            any_waiting = True
            if self._ready(job, snapshot=snapshot):
                return job
        if any_waiting and not self._tasks and not self._n_delayed:
            waiting = [j for j in order if j.state == "waiting"]
            # Only unchecked setup/teardown edges can form a cycle; never deadlock on one.
            for job in waiting:
                if self._ready(job, ignore_edges=True, snapshot=snapshot):
                    return job
        return None

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            for timer in list(self._timers):
                timer.cancel()

    async def _loop(self) -> None:
        while True:
            if self.killed:
                await self._drain_cancelled()
                return
            if (self.operator_stop or self.abort_error) and not self._shutdown_started:
                await self._enter_shutdown()
                continue
            if self._shutdown_deadline is not None and time.monotonic() >= self._shutdown_deadline:
                await self._expire_shutdown()
                return
            self._fill()
            if not self._n_open:
                return
            if not self._woken and not any(task.done() for task in self._tasks):
                await self._sleep()
            self._woken = False
            if self._failure is not None:
                raise self._failure
            for task, job in list(self._tasks.items()):
                if task.done():
                    del self._tasks[task]
                    self._finish(job, task)

    def _fill(self) -> None:
        self._advance_slot()
        while len(self._tasks) < self._capacity():
            job = self._pick()
            if job is None:
                break
            self._dispatch(job)

    def _job_done(self, task: asyncio.Task[AttemptOutcome]) -> None:
        """A job's task ended. In the ordinary course, record it and start what is now
        ready right here: the next phase starts without a turn of the run loop. Anything
        else (stop, kill, shutdown, the end) is the loop's to handle."""
        job = self._tasks.get(task)
        if (
            job is None
            or self._interrupted
            or self._shutdown_started
            or self._wakeup is None  # the loop is not asleep: it will see the task itself
        ):
            self._wake()
            return
        del self._tasks[task]
        try:
            self._finish(job, task)
            if self._interrupted or not self._n_open:
                self._wake()
                return
            self._fill()
        except BaseException as exc:  # raised in the run loop's task, not lost in a callback
            self._failure = exc
            self._wake()
            return
        if not self._tasks:
            self._wake()  # nothing runs (all waiting on a delay, or blocked): the loop decides

    @property
    def _interrupted(self) -> bool:
        """Killed, stopped by the operator, or aborted by a plug failure."""
        return self.killed or self.operator_stop or self.abort_error

    def _wake(self, *_: object) -> None:
        self._woken = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _sleep(self) -> None:
        loop = asyncio.get_running_loop()
        self._wakeup = loop.create_future()
        timer = None
        if self._shutdown_deadline is not None:
            timer = loop.call_at(loop.time() + max(0.0, self._shutdown_deadline - time.monotonic()), self._wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def upcoming(self, after: Job) -> Job | None:
        """The job most likely to be dispatched next (the first waiting one in queue
        order), for look-ahead only: no promise it runs, or runs next."""
        order = self._order
        for index in range(self._scan_from, min(len(order), self._scan_from + 8)):
            job = order[index]
            if job.state == "waiting" and job is not after:
                return job
        return None

    def _dispatch(self, job: Job) -> None:
        job.state = "running"
        task = asyncio.ensure_future(self.run_job(job))
        task.add_done_callback(self._job_done)
        self._tasks[task] = job

    def _finish(self, job: Job, task: asyncio.Task[AttemptOutcome]) -> None:
        if task.cancelled():
            attempt = (
                self.record_unfinished(job, "stopped")
                if self.record_unfinished
                else AttemptOutcome("STOP")
            )
        elif isinstance(task.exception(), JobBlocked):
            job.state = "cancelled" if not job.attempts else "done"
            if self.on_job_final:
                self.on_job_final(job)
            return
        elif task.exception() is not None:
            exc = task.exception()
            attempt = AttemptOutcome("ERROR", f"Engine error while running the phase: {exc!r}")
        else:
            attempt = task.result()
        job.attempts.append(attempt)
        self._after_attempt(job, attempt)

    def _after_attempt(self, job: Job, attempt: AttemptOutcome) -> None:
        outcome = attempt.outcome
        action = next_action(
            outcome,
            then=_then_map(job.phase),
            on_first_failure=self.spec.execution.on_first_failure,
        )
        if action == "retry":
            if self._can_retry(job):
                job.state = "delayed"
                delay_ms = job.phase.retry.delay_ms if job.phase.retry else None
                if not delay_ms:
                    self._requeue(job)
                    return
                timer = asyncio.ensure_future(self._requeue_after(job, (delay_ms or 0) / 1000))
                self._timers.add(timer)
                timer.add_done_callback(self._timers.discard)
                return
            action = "continue"  # a suppressed retry leaves the attempt final, and the run goes on
        job.state = "done"
        job.final_action = action
        if self.on_job_final:
            self.on_job_final(job)
        if job.stage == "setup" and outcome in ("FAIL", "ERROR", "TIMEOUT", "STOP"):
            if job.execution_wide:
                self._cancel_queued(lambda j: True)
            else:
                self._cancel_queued(lambda j: j.slot_index == job.slot_index)
        if action == "stop":
            self._take_stop_action(outcome)

    def _take_stop_action(self, outcome: EngineOutcome) -> None:
        teardown_queued = any(
            j.stage == "teardown" and j.state in ("waiting", "delayed") for j in self.jobs
        )
        # Q1: a stop caused by a failure keeps the failure's outcome; so does a phase that
        # ends STOP because an earlier stop action closed its prompt.
        if not teardown_queued and outcome not in ("FAIL", "ERROR", "TIMEOUT") and not self.stop_action_taken:
            self.stop_action_without_teardown = True
        self.stop_action_taken = True
        self._cancel_queued(lambda j: True)
        if self.on_stop_action:
            self.on_stop_action()

    def _can_retry(self, job: Job) -> bool:
        if job.retry_count >= job.retry_limit:
            return False
        if self.killed:
            return False
        return job.stage == "teardown" or not self.shutting_down

    async def _requeue_after(self, job: Job, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        self._requeue(job)

    def _requeue(self, job: Job) -> None:
        if job.state != "delayed":
            return
        job.retry_count += 1
        job.rank = -next(self._front)
        self._order_dirty = True
        job.state = "waiting"
        self._wake()

    # --- shutdown (operator stop, plug start failure) -------------------------------
    async def _enter_shutdown(self) -> None:
        """Let running phases end (closing their prompts), then teardown on fresh workers."""
        running = {t: j for t, j in self._tasks.items() if j.stage != "teardown"}
        if running:
            _, pending = await asyncio.wait(running, timeout=self.stop_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            for task in running:
                job = self._tasks.pop(task)
                self._finish(job, task)
        # Delayed retries never happen now: their attempt is final.
        for job in self.jobs:
            if job.state == "delayed":
                job.state = "done"
        self._shutdown_started = True
        if self.on_shutdown:
            await self.on_shutdown()
        self._shutdown_deadline = time.monotonic() + self.teardown_budget_s

    async def _expire_shutdown(self) -> None:
        reason = (
            f"Teardown did not finish within the {self.teardown_budget_s:g} s allowed "
            "after the run was stopped"
        )
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        for task, job in list(self._tasks.items()):
            self._tasks.pop(task)
            job.attempts.append(self._unfinished(job, reason))
            job.state = "done"
        for job in self.jobs:
            if job.state in ("waiting", "delayed"):
                if job.stage == "teardown":
                    job.attempts.append(self._unfinished(job, reason))
                    job.state = "done"
                else:
                    job.state = "cancelled"

    def _unfinished(self, job: Job, reason: str) -> AttemptOutcome:
        if self.record_unfinished:
            return self.record_unfinished(job, reason)
        return AttemptOutcome("ERROR", reason)

    async def _drain_cancelled(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            for job in self.jobs:
                if job.state == "running":
                    job.state = "cancelled" if not job.attempts else "done"

    # --- results ------------------------------------------------------------------
    def final_attempts(self, slot_index: int | None = None) -> list[tuple[Job, AttemptOutcome]]:
        """Each (phase, slot)'s final attempt; with `slot_index`, that slot's plus execution-wide."""
        out = []
        for job in self.jobs:
            if not job.attempts or (job.state == "cancelled" and not job.attempts):
                continue
            if slot_index is not None and job.slot_index not in (slot_index, -1):
                continue
            out.append((job, job.attempts[-1]))
        return out


def _then_map(phase: PhaseSpec) -> dict[str, str | None] | None:
    then = phase.then
    if then is None:
        return None
    return {
        "pass": getattr(then, "pass_", None),
        "fail": then.fail,
        "error": then.error,
        "timeout": then.timeout,
    }
