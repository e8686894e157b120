"""The public engine entry point: `start_run` turns a loaded procedure into a run.

Front ends (the `tofu-tui run` command, the station daemon, the console) all drive a run
the same way: `start_run(...)` returns a `RunHandle` to wait on, stop, kill or answer
prompts through, and every event reaches them through `emit` as a fully-formed
`tofu_tui.models.events` object (gap-free `seq`, one `execution_id`, ms timestamps).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tofu_tui.models.events import (
    AttachmentEvent,
    ErrorEvent,
    MeasurementEvent,
    PhaseFinished,
    PhaseLog,
    PhaseStarted,
    ProcedureRef,
    RunFinished,
    RunOutcome,
    RunStarted,
    UiUpdate,
    format_ts,
    utc_now,
)
from tofu_tui.models.run import RunCreate
from tofu_tui.procedure.outcomes import (
    FinalAttempt,
    PhaseVerdict,
    event_phase_outcome,
    phase_outcome,
    run_outcome,
    run_payload_outcome,
    timeout_docstring,
    worst_run_outcome,
)
from tofu_tui.procedure.payload import (
    UNIT_FIELDS,
    AttemptRecord,
    build_run,
    resolve_procedure_id,
    run_dict,
)
from tofu_tui.procedure.prompts import (
    IDENTIFY_KEY,
    HeadlessPrompt,
    Prompt,
    PromptBroker,
    PromptTimedOut,
    PromptUnanswered,
    format_refusal,
)
from tofu_tui.procedure.scheduler import (
    SHUTDOWN_TEARDOWN_WORKERS,
    AttemptOutcome,
    Job,
    JobBlocked,
    Scheduler,
)

if TYPE_CHECKING:
    from tofu_tui.models.events import Event
    from tofu_tui.procedure.load import LoadedProcedure
    from tofu_tui.procedure.pool import AttachmentRecord, AttemptResult, LiveEvent, WorkerPool
    from tofu_tui.procedure.schema import PhaseSpec

log = logging.getLogger("tofu_tui.engine")

IDENTIFY_TIMEOUT_S = 30 * 60
SHARED_SLOT_ID = "<shared>"


@dataclass
class RunOptions:
    ui_values: dict[str, dict[str, Any]] | None = None
    ui_timeout_s: float | None = None
    headless: bool = False  # prompts without a preset answer fail fast
    unit: dict[str, Any] = field(default_factory=dict)  # --serial/--part/--revision/--batch
    procedure_id: str | None = None
    deployment_id: str | None = None
    execution_id: str | None = None  # minted if None
    station_plugs: Any = None  # plugs.StationPlugs of a long-lived station host
    plug_log_dir: Path | None = None  # where plug stdout/stderr go (default: the run's attachment folder)
    prestarted: Any = None  # a pool.PrestartedWorker for this procedure, adopted by the first pool


@dataclass
class RunResult:
    outcome: RunOutcome
    runs: list[RunCreate]
    attachments: list[list[AttachmentRecord]]
    execution_id: str
    error: str | None = None  # why nothing ran (identify failure, worker start failure)


class RunHandle:
    """Steers a run in flight; returned by `start_run`.

    Call its methods on the event loop that runs the run (from another thread, go through
    `loop.call_soon_threadsafe` or `asyncio.run_coroutine_threadsafe`)."""

    def __init__(self, run: _Run, task: asyncio.Task[RunResult]) -> None:
        self._run = run
        self._task = task

    @property
    def execution_id(self) -> str:
        return self._run.execution_id

    async def wait(self) -> RunResult:
        return await self._task

    def stop(self) -> None:
        """Operator stop: queued phases are cancelled, teardown runs, the run is ABORTED."""
        self._run.request_stop()

    def kill(self) -> None:
        """Force kill: nothing more runs, not even teardown."""
        self._run.request_kill()

    def answer(self, request_id: str, values: dict[str, Any]) -> str | None:
        """Answer a prompt: None when accepted, else the reason it was refused."""
        return self._run.broker.answer(request_id, values)

    def phase_of(self, request_id: str) -> str | None:
        """The phase key of an open prompt (None if no such prompt is open)."""
        prompt = self._run.broker.open_prompts.get(request_id)
        return prompt.phase_key if prompt is not None else None

    def warn(self, message: str, phase_key: str | None = None) -> None:
        """Report a front-end problem (a bad answer line) in the run's stream as a WARNING."""
        self._run.warn_for(message, phase_key)

    def no_more_answers(self) -> None:
        """The front end that could answer prompts is gone: waiting prompts fail fast."""
        self._run.broker.set_headless()


async def start_run(
    loaded: LoadedProcedure, options: RunOptions, emit: Callable[[Event], None]
) -> RunHandle:
    run = _Run(loaded, options, emit)
    task = asyncio.ensure_future(run.main())
    return RunHandle(run, task)


# ------------------------------------------------------------------------------------


class _Emitter:
    """Stamps events with the execution id, a gap-free seq and the emit time."""

    def __init__(self, execution_id: str, sink: Callable[[Event], None]) -> None:
        self.execution_id = execution_id
        self.sink = sink
        self.seq = 0
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.seq += 1
            event.execution_id = self.execution_id
            event.seq = self.seq
            event.ts = format_ts(utc_now())
            try:
                self.sink(event)
            except Exception:  # a broken front end must not break the run
                log.exception("event sink failed")


@dataclass
class _Scope:
    """The state phases of one slot (or the execution-wide phases) share."""

    key: str | None  # slot key; None for execution-wide
    name: str | None
    index: int
    label: str | None  # what events carry in `slot`
    unit: dict[str, Any] = field(default_factory=dict)
    identify_metadata: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # phase key -> PhaseResultView
    run_maps: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase key -> run metadata
    unit_maps: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase key -> unit metadata
    records: list[AttemptRecord] = field(default_factory=list)


def _empty_unit() -> dict[str, Any]:
    return {
        "serial_number": None,
        "part_number": None,
        "revision_number": None,
        "batch_number": None,
        "sub_units": {},
        "metadata": {},
    }


class _Run:
    def __init__(self, loaded: LoadedProcedure, options: RunOptions, emit: Callable[[Event], None]) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.options = options
        self.execution_id = options.execution_id or str(uuid.uuid4())
        self.emit = _Emitter(self.execution_id, emit)
        self.broker = PromptBroker(
            self.emit,
            ui_values=options.ui_values,
            headless=options.headless,
            ui_timeout_s=options.ui_timeout_s,
            warn=self._warn,
        )
        execution = self.spec.execution
        declared = "slots" in execution.model_fields_set
        self.slots = [
            _Scope(s.key, s.name, i, s.key if declared else None) for i, s in enumerate(execution.slots)
        ]
        self.shared = _Scope(None, None, -1, None)
        self.pool: WorkerPool | None = None
        self.attachments_dir: Path | None = None  # set as the run starts (run_attachments)
        self.scheduler: Scheduler | None = None
        self.stopped = False
        self.killed = False
        self._job_info: dict[str, tuple[PhaseSpec, str | None]] = {}  # live job id -> (phase, slot label)
        # live job id -> key -> (record, its evaluation) of the latest live measurement:
        # the attempt's final records are usually those same objects, evaluated once.
        self._live_evaluated: dict[str, dict[str, tuple[Any, Any]]] = {}
        self._attempt_start: dict[str, tuple[datetime, float, int]] = {}
        self._prompts: dict[str, Prompt] = {}  # job id -> its open prompt
        self._old_pools: list[WorkerPool] = []
        self._after_stop: set[str] = set()
        self._closed_by_stop_action: set[str] = set()  # UI-only jobs whose prompt a stop action closed
        self.plugs: Any = None  # PlugManager when the procedure declares plugs
        self.plug_error: str | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- control -------------------------------------------------------------------
    def request_stop(self) -> None:
        if self.stopped or self.killed:
            return
        self.stopped = True
        self.broker.close_all("stopped")
        if self.scheduler is not None:
            self.scheduler.stop()

    def request_kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        self.stopped = True
        self.broker.close_all("killed")
        if self.scheduler is not None:
            self.scheduler.kill()

    def _warn(self, message: str, phase_key: str | None = None) -> None:
        self.emit(PhaseLog(phase_key=phase_key, level="WARNING", message=message))

    def warn_for(self, message: str, phase_key: str | None = None) -> None:
        """A warning about an answer: attributed to the prompt's phase when the id is known."""
        self._warn(message, phase_key)

    # --- the run -------------------------------------------------------------------
    async def main(self) -> RunResult:
        from tofu_tui.procedure import run_attachments

        store = run_attachments.RunAttachments(self.execution_id)
        owned: run_attachments.RunAttachments | None = store
        try:
            self.attachments_dir = store.create()
        except Exception as exc:  # an unwritable cache costs the tidy folder, never the run
            self.attachments_dir = Path(tempfile.mkdtemp(prefix="tofu-attachments-"))
            log.warning("attachments go to %s: %s cannot be used (%s)", self.attachments_dir, store.folder, exc)
            owned = None

        if owned is not None:
            owned.lock()
        # Pruning walks the disk: in a thread while the run starts, and at most once a
        # minute (a thread competing for the interpreter slows a short run's start).
        pruning = (
            asyncio.ensure_future(asyncio.to_thread(run_attachments.prune))
            if owned is not None and run_attachments.prune_due(store.root)
            else None
        )
        try:
            return await self._main()
        finally:
            if pruning is not None:
                with contextlib.suppress(Exception):
                    await pruning
            if owned is not None:
                owned.close()

    async def _main(self) -> RunResult:
        for scope in self.slots:
            self.emit(
                RunStarted(
                    procedure=ProcedureRef(name=self.spec.name, version=self.spec.version or ""),
                    unit=self._unit_preview(),
                    slot=scope.label,
                )
            )
        from tofu_tui.procedure.pool import WorkerPool

        # Start the first worker now so its interpreter start overlaps identify.
        size = max(1, min(self.spec.execution.workers, self._worker_jobs()))
        prestarted, self.options.prestarted = self.options.prestarted, None
        self.pool = WorkerPool(self.loaded, size, self._live, prestarted=prestarted, attachments_dir=self.attachments_dir)
        pool_start = asyncio.ensure_future(self.pool.start())
        try:
            for scope in self.slots:
                scope.unit = await self._identify(scope)
                scope.identify_metadata = dict(scope.unit.get("metadata") or {})
        except _NothingRan as exc:
            pool_start.cancel()
            with contextlib.suppress(BaseException):
                await pool_start
            await self._close_pools()
            return self._nothing_ran(exc.outcome, str(exc))
        if self.slots:
            # execution-wide phases see the first slot's unit
            self.shared.unit = _copy_unit(self.slots[0].unit)
        started_at = utc_now()
        try:
            await pool_start
        except Exception as exc:  # §10: nothing is uploaded after a worker start failure
            await self._close_pools()
            return self._nothing_ran("ERROR", f"The phase workers could not start: {exc}")
        self.scheduler = Scheduler(
            self.spec,
            [scope.key for scope in self.slots],
            self._run_job,
            workers=self.spec.execution.workers,
            on_stop_action=self._close_running_prompts,
            on_shutdown=self._fresh_teardown_pool,
            record_unfinished=self._record_unfinished,
            on_job_final=self._job_final,
        )
        if self.stopped:
            self.scheduler.stop()
        if self.killed:
            self.scheduler.kill()
        try:
            if self.spec.plugs and not self.stopped:
                await self._start_plugs()
            await self.scheduler.run()
        finally:
            await self._close_pools()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if self.plugs is not None:
                with contextlib.suppress(Exception):
                    await self.plugs.close()
        ended_at = utc_now()
        return self._finish(started_at, ended_at)

    # --- plugs (§5) --------------------------------------------------------------------
    async def _start_plugs(self) -> None:
        from tofu_tui.procedure.plugs import PlugManager

        # Plug logs are the run's files too: kept, and pruned, with its attachments.
        log_dir = self.options.plug_log_dir
        if log_dir is None and self.attachments_dir is not None:
            log_dir = self.attachments_dir / "plug-logs"
        self.plugs = PlugManager(self.loaded, log_dir=log_dir, station=self.options.station_plugs)
        try:
            await self.plugs.start_execution()
        except Exception as exc:
            self._plug_failed(exc)

    def _plug_failed(self, exc: Exception) -> None:
        """§5: the run is ERROR; nothing new is dispatched, teardown still runs."""
        message = str(exc) or repr(exc)
        if self.plug_error is None:
            self.plug_error = message
            self.emit(PhaseLog(phase_key=None, level="ERROR", message=message))
        if self.scheduler is not None:
            self.scheduler.abort()

    async def _slot_plugs(self, job: Job) -> dict[str, Any]:
        if self.plugs is None:
            return {}
        if job.slot is not None and self.plugs.has_slot_plugs and self.plug_error is None:
            try:
                await self.plugs.start_slot(job.slot)
            except Exception as exc:
                self._plug_failed(exc)
                raise JobBlocked(str(exc)) from None
        return dict(self.plugs.addresses(job.slot))

    def _job_final(self, job: Job) -> None:
        """Q4: a slot's plugs go once nothing left in that slot can use them."""
        if self.plugs is None or job.slot is None or self.scheduler is None:
            return
        if not self.scheduler.slot_open(job.slot_index):
            task = asyncio.ensure_future(self.plugs.stop_slot(job.slot))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _worker_jobs(self) -> int:
        phases = [*self.spec.setup, *self.spec.main, *self.spec.teardown]
        needing = sum(1 for p in phases if not p.is_ui_only)
        return needing * max(1, len(self.slots))

    async def _close_pools(self) -> None:
        pools = [*self._old_pools, *([self.pool] if self.pool else [])]
        self._old_pools = []
        self.pool = None
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), 15)
            except Exception:
                log.exception("closing the worker pool failed")

    async def _fresh_teardown_pool(self) -> None:
        """§6: after an operator stop, teardown runs on 2 fresh workers."""
        from tofu_tui.procedure.pool import WorkerPool

        if self.pool is not None:
            old = self.pool
            self._old_pools.append(old)
            teardown_running = self.scheduler is not None and any(
                j.state == "running" for j in self.scheduler.jobs
            )
            if not teardown_running:  # else it closes at run end, after those finish
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.close(), 10)
                self._old_pools.remove(old)
        pending_teardown = self.scheduler is not None and any(
            j.stage == "teardown" and not j.final and not j.phase.is_ui_only
            for j in self.scheduler.jobs
        )
        if not pending_teardown:
            self.pool = None
            return
        self.pool = WorkerPool(self.loaded, SHUTDOWN_TEARDOWN_WORKERS, self._live, attachments_dir=self.attachments_dir)
        try:
            await self.pool.start()
        except Exception as exc:
            log.error("teardown workers could not start: %s", exc)

    def _close_running_prompts(self) -> None:
        for prompt in list(self._prompts.values()):
            self.broker.close(prompt, "stopped")

    def _nothing_ran(self, outcome: RunOutcome, message: str) -> RunResult:
        self.emit(ErrorEvent(message=message))
        return RunResult(outcome=outcome, runs=[], attachments=[], execution_id=self.execution_id, error=message)

    def _unit_preview(self) -> dict[str, Any]:
        unit: dict[str, Any] = {}
        spec_unit = self.spec.unit
        ui_identify = (self.options.ui_values or {}).get(IDENTIFY_KEY)
        for name in UNIT_FIELDS:
            value = self.options.unit.get(name)
            if value is None and isinstance(ui_identify, dict) and isinstance(ui_identify.get(name), str):
                value = ui_identify[name].strip() or None  # as identify will take it (trimmed, blank dropped)
            if value is None and spec_unit is not None and spec_unit.auto_identify:
                field_spec = getattr(spec_unit, name)
                value = field_spec.default_value if field_spec else None
            unit[name] = value
        return unit

    # --- identify (§9) ----------------------------------------------------------------
    async def _identify(self, scope: _Scope) -> dict[str, Any]:
        from tofu_tui.procedure.answers import identify_components, validate_identify

        spec_unit = self.spec.unit
        preset: dict[str, Any] = {}
        ui_identify = (self.options.ui_values or {}).get(IDENTIFY_KEY)
        if isinstance(ui_identify, dict):
            preset.update(ui_identify)
        preset.update({k: v for k, v in self.options.unit.items() if v is not None})

        if spec_unit is not None and spec_unit.auto_identify:
            values = _identify_defaults(spec_unit)
            values.update(preset)
            result = validate_identify(spec_unit, values)
            if not result.ok:
                raise _NothingRan(
                    "ERROR",
                    "The unit could not be identified: "
                    + "; ".join(f"{k}: {v}" for k, v in result.errors.items()),
                )
            return _unit_from_answer(result)

        components = identify_components(spec_unit)
        form_keys = {c.key for c in components}
        # --revision/--batch for fields the form does not ask: set on the unit as given
        extra = {k: v for k, v in preset.items() if k in UNIT_FIELDS and k not in form_keys}
        preset = {k: v for k, v in preset.items() if k not in extra}
        refusal = None
        if preset:
            checked = validate_identify(spec_unit, dict(preset))
            if not checked.ok:
                refusal = format_refusal(checked.errors)
        try:
            prompt = self.broker.open(
                IDENTIFY_KEY,
                scope.label,
                components,
                waits=True,
                validate=lambda _c, v: validate_identify(spec_unit, v),
                preset=preset,
            )
        except HeadlessPrompt:
            raise _NothingRan("ERROR", self._identify_headless(refusal)) from None
        deadline = None if self.options.ui_timeout_s is not None else IDENTIFY_TIMEOUT_S
        try:
            answer = await self.broker.wait(prompt, deadline_s=deadline)
        except PromptTimedOut:
            raise _NothingRan("ERROR", "Nobody identified the unit in time; the run was refused.") from None
        except HeadlessPrompt:
            raise _NothingRan("ERROR", self._identify_headless(prompt.extras.get("refusal"))) from None
        except PromptUnanswered as exc:
            if self.stopped:
                raise _NothingRan("ABORTED", "The run was stopped before the unit was identified.") from None
            raise _NothingRan("ERROR", f"The identify prompt closed without an answer ({exc.reason}).") from None
        unit = _unit_from_answer(answer)
        unit.update(extra)
        return unit

    @staticmethod
    def _identify_headless(refusal: str | None) -> str:
        why = f" The given unit fields were refused: {refusal}." if refusal else ""
        return (
            "The unit must be identified before the run, but nobody can answer the identify "
            f"prompt (headless run).{why} Pass --serial and --part, add an \"identify\" entry to "
            "--ui-values, or set unit.auto_identify with default values in procedure.yaml."
        )

    # --- one attempt -------------------------------------------------------------------
    def _scope_of(self, job: Job) -> _Scope:
        return self.shared if job.slot is None else self.slots[job.slot_index]

    def _visible_results(self, scope: _Scope) -> Mapping[str, Any]:
        # A live view, not a copy: copying every earlier result made each phase cost
        # time in proportion to the phases before it.
        if scope is self.shared:
            return self.shared.results
        return collections.ChainMap(scope.results, self.shared.results)

    def _visible_run_metadata(self, scope: _Scope, own_key: str) -> dict[str, Any]:
        maps = list(self.shared.run_maps.items())
        if scope is not self.shared:
            maps += list(scope.run_maps.items())
        merged: dict[str, Any] = {}
        for key, one in maps:
            if key != own_key:
                merged.update(one)
        return merged

    def _visible_unit(self, scope: _Scope, own_key: str) -> dict[str, Any]:
        unit = _copy_unit(scope.unit)
        metadata = dict(scope.identify_metadata)
        for key, one in scope.unit_maps.items():
            if key != own_key:
                metadata.update(one)
        unit["metadata"] = metadata
        return unit

    async def _run_job(self, job: Job) -> AttemptOutcome:
        phase = job.phase
        scope = self._scope_of(job)
        attempt = job.retry_count
        # plugs first: a job whose slot plug cannot start is blocked, before any event
        plug_addresses = await self._slot_plugs(job) if not phase.is_ui_only else {}
        started_at = utc_now()
        t0 = time.monotonic()
        live_id = f"{job.id}/{attempt}"
        self._job_info[live_id] = (phase, scope.label)
        if self.stopped:
            self._after_stop.add(job.id)  # teardown started after the stop: not interrupted
        self._attempt_start[job.id] = (started_at, t0, attempt)
        self.emit(PhaseStarted(phase_key=phase.key, phase_name=phase.name, attempt=attempt, slot=scope.label))
        deadline = t0 + phase.timeout_ms / 1000 if phase.timeout_ms else None

        unit_in = self._visible_unit(scope, phase.key)
        run_metadata_in = self._visible_run_metadata(scope, phase.key)
        prompt: Prompt | None = None
        ui = phase.ui
        try:
            if ui is not None and (ui.components or ui.requires_input):
                from tofu_tui.procedure.answers import validate_answers

                try:
                    prompt = self.broker.open(
                        phase.key, scope.label, ui.components, waits=ui.waits, validate=validate_answers
                    )
                except HeadlessPrompt as exc:
                    return self._conclude(job, scope, started_at, PhaseVerdict("ERROR", str(exc), str(exc)))
                self._prompts[job.id] = prompt
            if phase.is_ui_only:
                return await self._ui_only(job, scope, started_at, deadline, prompt, unit_in)
            from tofu_tui.procedure.pool import AttemptRequest, WorkerPool

            if self.pool is None:  # defensive: teardown after a stop found no pool
                self.pool = WorkerPool(self.loaded, SHUTDOWN_TEARDOWN_WORKERS, self._live, attachments_dir=self.attachments_dir)

            request = AttemptRequest(
                phase=phase,
                slot=scope.key,
                retry_count=attempt,
                retry_limit=job.retry_limit,
                deadline=deadline,
                unit=unit_in,
                run_metadata=dict(run_metadata_in),
                results=self._visible_results(scope),
                plugs=plug_addresses,
                slot_id=scope.key if scope.key is not None else SHARED_SLOT_ID,
                job_id=live_id,
                next_python=self._upcoming_python(job),
            )
            try:
                result = await self.pool.run_attempt(request)
            except Exception as exc:  # the pool itself failed (e.g. no worker could start)
                text = f"The phase could not run: {exc}"
                return self._conclude(job, scope, started_at, PhaseVerdict("ERROR", text, text))
            return await self._python_done(job, scope, result, prompt, deadline, unit_in, run_metadata_in)
        finally:
            if prompt is not None:
                self.broker.close(prompt, "done")
            self._prompts.pop(job.id, None)

    def _upcoming_python(self, job: Job) -> str | None:
        if self.pool is None or self.pool.size != 1:
            return None  # with several workers the next phase may well go to another one
        upcoming = self.scheduler.upcoming(job) if self.scheduler is not None else None
        if upcoming is None or upcoming.phase.python is None or upcoming.phase.executable is not None:
            return None
        return upcoming.phase.python

    async def _ui_only(
        self,
        job: Job,
        scope: _Scope,
        started_at: datetime,
        deadline: float | None,
        prompt: Prompt | None,
        unit_in: dict[str, Any],
    ) -> AttemptOutcome:
        if prompt is None or not prompt.waits:
            verdict = PhaseVerdict("STOP" if self._interrupted(job) else "PASS", None, None)
            return self._conclude(job, scope, started_at, verdict)
        evaluated: list[Any] = []
        unit_updates: dict[str, Any] = {}
        try:
            answer = await self.broker.wait(prompt, deadline_s=_remaining(deadline))
        except PromptUnanswered as exc:
            if exc.reason == "stopped" and not self._interrupted(job):
                self._closed_by_stop_action.add(job.id)  # Q1: not an abort of the run
            return self._conclude(job, scope, started_at, PhaseVerdict("STOP", None, None))
        except PromptTimedOut as exc:
            return self._conclude(job, scope, started_at, self._prompt_timeout(job, deadline, exc))
        except HeadlessPrompt as exc:
            return self._conclude(job, scope, started_at, PhaseVerdict("ERROR", str(exc), str(exc)))
        records = self._bound_records(answer, {})
        evaluated = [self._evaluate(job.phase, r) for r in records.values()]
        for ev, record in zip(evaluated, records.values(), strict=True):
            self._emit_measurement(job.phase.key, scope.label, ev, record)
        unit_updates = answer.unit_updates
        verdict = phase_outcome(
            error=None,
            timed_out=False,
            signal=None,
            exit_code=None,
            check_failed=any(e.check_failed for e in evaluated),
            retry_count=job.retry_count,
            retry_limit=job.retry_limit,
            operator_stop=self._interrupted(job),
            timeout_ms=job.phase.timeout_ms,
        )
        unit_out = _apply_unit_updates(_copy_unit(unit_in), unit_updates)
        return self._conclude(
            job, scope, started_at, verdict, evaluated=evaluated, records=records, unit_in=unit_in, unit_out=unit_out
        )

    async def _python_done(
        self,
        job: Job,
        scope: _Scope,
        result: AttemptResult,
        prompt: Prompt | None,
        deadline: float | None,
        unit_in: dict[str, Any],
        run_metadata_in: dict[str, Any],
    ) -> AttemptOutcome:
        records = dict(result.measurements)
        live = self._live_evaluated.pop(f"{job.id}/{job.retry_count}", {})
        evaluated = []
        for record in records.values():
            seen = live.get(record.key)
            evaluated.append(seen[1] if seen is not None and seen[0] is record else self._evaluate(job.phase, record))

        def verdict_now() -> PhaseVerdict:
            return phase_outcome(
                error=result.error,
                timed_out=result.timed_out,
                signal=result.signal,
                exit_code=result.exit_code,
                check_failed=any(e.check_failed for e in evaluated),
                retry_count=job.retry_count,
                retry_limit=job.retry_limit,
                operator_stop=self._interrupted(job),
                timeout_ms=job.phase.timeout_ms,
            )

        verdict = verdict_now()
        unit_out = result.unit if isinstance(result.unit, dict) else unit_in
        if prompt is not None and prompt.waits:
            if verdict.outcome != "PASS":
                self.broker.close(prompt, "dismissed")
            else:
                try:
                    answer = await self.broker.wait(prompt, deadline_s=_remaining(deadline))
                except PromptUnanswered as exc:
                    verdict = (
                        PhaseVerdict("STOP", None, None)
                        if self._interrupted(job)
                        else PhaseVerdict(
                            "ERROR",
                            f"The prompt closed without an answer ({exc.reason})",
                            f"The prompt closed without an answer ({exc.reason})",
                        )
                    )
                except PromptTimedOut as exc:
                    verdict = self._prompt_timeout(job, deadline, exc)
                except HeadlessPrompt as exc:
                    verdict = PhaseVerdict("ERROR", str(exc), str(exc))
                else:
                    bound = self._bound_records(answer, records)
                    for key, record in bound.items():
                        records[key] = record
                        ev = self._evaluate(job.phase, record)
                        evaluated.append(ev)
                        self._emit_measurement(job.phase.key, scope.label, ev, record)
                    unit_out = _apply_unit_updates(_copy_unit(unit_out), answer.unit_updates)
                    verdict = verdict_now()
        return self._conclude(
            job,
            scope,
            result.started_at,
            verdict,
            ended_at=None,
            evaluated=evaluated,
            records=records,
            result=result,
            unit_in=unit_in,
            unit_out=unit_out,
            run_metadata_in=run_metadata_in,
        )

    def _interrupted(self, job: Job) -> bool:
        """§7.2 rule 3: an operator stop is in progress for this attempt."""
        return self.stopped and job.id not in self._after_stop

    def _prompt_timeout(self, job: Job, deadline: float | None, exc: Exception) -> PhaseVerdict:
        if deadline is not None and time.monotonic() >= deadline - 0.05:
            text = timeout_docstring(job.phase.timeout_ms)
        else:
            text = str(exc)
        return PhaseVerdict("TIMEOUT", None, text)

    def _bound_records(self, answer: Any, already: dict[str, Any]) -> dict[str, Any]:
        from tofu_tui.procedure.evaluate import MeasurementRecord

        out: dict[str, Any] = {}
        for key, value in (answer.bound_measurements or {}).items():
            if key in already:
                continue  # code set it: the answer does not override (§9)
            out[key] = MeasurementRecord(key=key, value=value)
        return out

    def _evaluate(self, phase: PhaseSpec, record: Any) -> Any:
        from tofu_tui.procedure.evaluate import evaluate_measurement

        spec = next((m for m in phase.measurements if m.key == record.key), None)
        return evaluate_measurement(spec, record)

    def _emit_measurement(self, phase_key: str, slot: str | None, evaluated: Any, record: Any) -> None:
        payload = evaluated.payload
        validators = []
        if payload is not None and payload.validators:
            validators = [v.model_dump(mode="json", exclude_none=True) for v in payload.validators]
        value = record.value
        if record.x_axis is not None or record.y_axis:
            value = {
                "x_axis": record.x_axis,
                "y_axis": {k: y.data for k, y in (record.y_axis or {}).items()},
            }
        self.emit(
            MeasurementEvent(
                phase_key=phase_key,
                key=evaluated.key,
                name=evaluated.name,
                value=value,
                unit=evaluated.unit,
                outcome=evaluated.live_outcome,
                validators=validators,
                slot=slot,
            )
        )

    def _conclude(
        self,
        job: Job,
        scope: _Scope,
        started_at: datetime,
        verdict: PhaseVerdict,
        *,
        ended_at: datetime | None = None,
        evaluated: list[Any] | None = None,
        records: dict[str, Any] | None = None,
        result: AttemptResult | None = None,
        unit_in: dict[str, Any] | None = None,
        unit_out: dict[str, Any] | None = None,
        run_metadata_in: dict[str, Any] | None = None,
    ) -> AttemptOutcome:
        """Record one finished attempt: state for later phases, payload entry, event."""
        from tofu_tui.procedure.pool import PhaseResultView

        phase = job.phase
        ended = ended_at or utc_now()
        if result is not None and result.ended_at > ended:
            ended = result.ended_at
        measurements = [e.payload for e in (evaluated or []) if e.payload is not None]
        # one entry per key, the last value wins (Q9)
        by_key = {m.name: m for m in measurements}
        record = AttemptRecord(
            phase=phase,
            slot=scope.key,
            retry_count=job.retry_count,
            started_at=started_at,
            ended_at=ended,
            outcome=verdict.outcome,
            error=verdict.error,
            docstring=verdict.docstring,
            measurements=list(by_key.values()),
            logs=list(result.logs) if result is not None else [],
            attachments=list(result.attachments) if result is not None else [],
        )
        if result is not None and run_metadata_in is not None and isinstance(result.run_metadata, dict):
            record.run_metadata = {
                k: v for k, v in result.run_metadata.items() if k not in run_metadata_in or run_metadata_in[k] != v
            }
            _keep_map(scope.run_maps, phase.key, record.run_metadata)
        if unit_in is not None and unit_out is not None:
            before = unit_in.get("metadata") or {}
            after = unit_out.get("metadata") or {}
            record.unit_metadata = {k: v for k, v in after.items() if k not in before or before[k] != v}
            _keep_map(scope.unit_maps, phase.key, record.unit_metadata)
            self._apply_unit_change(scope, unit_in, unit_out)
        scope.records.append(record)
        scope.results[phase.key] = PhaseResultView(
            outcome=verdict.outcome.lower(),
            duration_ms=record.duration_ms,
            measurements=dict(records or {}),
        )
        self.emit(
            PhaseFinished(
                phase_key=phase.key,
                attempt=job.retry_count,
                outcome=event_phase_outcome(verdict.outcome),
                duration_ms=round(record.duration_ms, 3),
                error=verdict.docstring,
                slot=scope.label,
            )
        )
        return AttemptOutcome(verdict.outcome, verdict.error, record)

    def _apply_unit_change(self, scope: _Scope, before: dict[str, Any], after: dict[str, Any]) -> None:
        targets = [scope]
        if scope is self.shared and len(self.slots) == 1:
            targets.append(self.slots[0])  # one slot: execution-wide writes are its unit's
        for target in targets:
            for name in UNIT_FIELDS:
                if after.get(name) != before.get(name):
                    target.unit[name] = after.get(name)
            subs_before = before.get("sub_units") or {}
            for key, value in (after.get("sub_units") or {}).items():
                if subs_before.get(key) != value:
                    target.unit.setdefault("sub_units", {})[key] = value

    def _record_unfinished(self, job: Job, reason: str) -> AttemptOutcome:
        """An attempt abandoned by the scheduler (stop grace over, teardown budget spent)."""
        scope = self._scope_of(job)
        started = self._attempt_start.get(job.id)
        if started is None or job.state == "waiting" or started[2] != job.retry_count:
            started_at = utc_now()
            self.emit(
                PhaseStarted(phase_key=job.phase.key, phase_name=job.phase.name, attempt=job.retry_count, slot=scope.label)
            )
        else:
            started_at = started[0]
        if reason == "stopped":
            verdict = PhaseVerdict("STOP", None, None)
        else:
            verdict = PhaseVerdict("ERROR", reason, reason)
        return self._conclude(job, scope, started_at, verdict)

    # --- live events from the workers ---------------------------------------------------
    def _live(self, event: LiveEvent) -> None:
        from tofu_tui.procedure.pool import (
            LiveAttachment,
            LiveEngineWarning,
            LiveLog,
            LiveMeasurement,
            LiveUiUpdate,
        )

        info = self._job_info.get(event.job_id)
        if info is None:
            return
        phase, slot = info
        if isinstance(event, LiveLog):
            level = event.line.level if event.line.level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
            self.emit(PhaseLog(phase_key=phase.key, level=level, message=event.line.message, slot=slot))  # type: ignore[arg-type]
        elif isinstance(event, LiveMeasurement):
            try:
                evaluated = self._evaluate(phase, event.record)
            except Exception:
                log.exception("live measurement evaluation failed")
                return
            self._live_evaluated.setdefault(event.job_id, {})[event.key] = (event.record, evaluated)
            self._emit_measurement(phase.key, slot, evaluated, event.record)
        elif isinstance(event, LiveUiUpdate):
            self.emit(UiUpdate(phase_key=phase.key, key=event.key, value=event.value, slot=slot))
        elif isinstance(event, LiveAttachment):
            att = event.attachment
            self.emit(AttachmentEvent(phase_key=phase.key, name=att.name, path=str(att.path), size=att.size, slot=slot))
        elif isinstance(event, LiveEngineWarning):
            log.warning("%s: %s", phase.key, event.message)

    # --- the end ----------------------------------------------------------------------
    def _finish(self, started_at: datetime, ended_at: datetime) -> RunResult:
        assert self.scheduler is not None
        sched = self.scheduler
        runs: list[RunCreate] = []
        attachments: list[list[AttachmentRecord]] = []
        outcomes: list[RunOutcome] = []
        directory = self.loaded.directory
        procedure_id = resolve_procedure_id(
            self.options.procedure_id or getattr(self.loaded, "procedure_id", None), directory
        )
        declared = self.slots[0].label is not None if self.slots else False
        for scope in self.slots:
            finals = [
                # §7.4 rule 3 counts phase.stop(), not a prompt closed by a failure's stop (Q1)
                FinalAttempt("SKIP" if job.id in self._closed_by_stop_action else a.outcome, a.error)
                for job, a in sched.final_attempts(scope.index)
            ]
            engine = run_outcome(
                finals,
                plug_failed=sched.abort_error or self.plug_error is not None,
                operator_stop=sched.operator_stop or self.killed,
                stop_action_without_teardown=sched.stop_action_without_teardown,
            )
            outcome = run_payload_outcome(engine)
            records = [*self.shared.records, *scope.records]
            unit = scope.unit
            run = build_run(
                outcome=outcome,
                records=records,
                unit=unit,
                identify_metadata=scope.identify_metadata,
                directory=directory,
                procedure_version=self.spec.version or "",
                procedure_id=procedure_id,
                started_at=started_at,
                ended_at=ended_at,
                deployment_id=self.options.deployment_id,
                execution_id=self.execution_id if declared else None,
                slot_key=scope.key if declared else None,
                slot_name=scope.name if declared else None,
                docstring=self.plug_error,
            )
            runs.append(run)
            attachments.append([a for r in sorted(records, key=lambda r: r.started_at) for a in r.attachments])
            outcomes.append(outcome)
        for scope, run in zip(self.slots, runs, strict=True):
            self.emit(RunFinished(outcome=run.outcome, run=run_dict(run), slot=scope.label))
        return RunResult(
            outcome=worst_run_outcome(outcomes),
            runs=runs,
            attachments=attachments,
            execution_id=self.execution_id,
        )


class _NothingRan(Exception):
    def __init__(self, outcome: RunOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _keep_map(maps: dict[str, dict[str, Any]], key: str, one: dict[str, Any]) -> None:
    """A phase's latest metadata map (only non-empty ones are kept: later phases merge them)."""
    if one:
        maps[key] = one
    else:
        maps.pop(key, None)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _copy_unit(unit: dict[str, Any]) -> dict[str, Any]:
    out = _empty_unit()
    out.update({k: v for k, v in unit.items() if k not in ("sub_units", "metadata")})
    out["sub_units"] = dict(unit.get("sub_units") or {})
    out["metadata"] = dict(unit.get("metadata") or {})
    return out


def _identify_defaults(spec_unit: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in UNIT_FIELDS:
        field_spec = getattr(spec_unit, name, None)
        if field_spec is not None and field_spec.default_value:
            values[name] = field_spec.default_value
    for sub in spec_unit.sub_units or []:
        if sub.serial_number is not None and sub.serial_number.default_value:
            values[f"sub_unit:{sub.key}"] = sub.serial_number.default_value
    for key, field_spec in (spec_unit.metadata or {}).items():
        if field_spec.default_value:
            values[f"metadata:{key}"] = field_spec.default_value
    return values


def _apply_unit_updates(unit: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    for key, value in (updates or {}).items():
        if key in UNIT_FIELDS:
            unit[key] = value
        elif key == "sub_units" and isinstance(value, dict):
            unit.setdefault("sub_units", {}).update(value)
        elif key == "metadata" and isinstance(value, dict):
            unit.setdefault("metadata", {}).update(value)
        else:
            for prefix, target in (("sub_units.", "sub_units"), ("sub_unit:", "sub_units"),
                                   ("metadata.", "metadata"), ("metadata:", "metadata")):
                if key.startswith(prefix):
                    unit.setdefault(target, {})[key[len(prefix):]] = value
                    break
    return unit


def _unit_from_answer(answer: Any) -> dict[str, Any]:
    unit = _empty_unit()
    if answer.unit_updates:
        _apply_unit_updates(unit, answer.unit_updates)
    else:
        _apply_unit_updates(unit, answer.values)
    for name in UNIT_FIELDS:
        if isinstance(unit.get(name), str) and not unit[name].strip():
            unit[name] = None
    return unit


__all__ = [
    "RunHandle",
    "RunOptions",
    "RunResult",
    "start_run",
]
