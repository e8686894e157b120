"""The prompt broker: every operator prompt of a run, and the one way to answer it.

A prompt is raised as a `ui_request` event. Answers come from `--ui-values` (auto-answer
when the file covers every required input and validates), or from `answer()`, which every
front end calls (stdin `ui_response` lines in `--json` mode, the console, the dashboard).
A refused answer returns its reason and leaves the prompt open. Headless runs never wait
for an answer that cannot come: such prompts fail fast.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tofu_tui.models.events import UiClosed, UiRequest

if TYPE_CHECKING:
    from tofu_tui.procedure.answers import AnswerResult
    from tofu_tui.procedure.schema import UiComponentSpec

IDENTIFY_KEY = "identify"

Validator = Callable[[list[Any], dict[str, Any]], "AnswerResult"]


class PromptUnanswered(Exception):
    """The prompt closed without an answer; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PromptTimedOut(Exception):
    """`--ui-timeout` (or the identify default) expired."""


class HeadlessPrompt(Exception):
    """No answer is preset and no front end can answer: fail fast."""


@dataclass
class Prompt:
    request_id: str
    phase_key: str
    slot: str | None
    components: list[Any]
    validate: Validator
    waits: bool
    future: asyncio.Future[AnswerResult]
    answer: AnswerResult | None = None
    closed: bool = False
    close_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _component_dict(component: Any) -> dict[str, Any]:
    if hasattr(component, "model_dump"):
        data: dict[str, Any] = component.model_dump(mode="json", exclude_none=True)
        return data
    return dict(component)


def _covers_required(components: list[Any], values: dict[str, Any]) -> bool:
    return all(
        c.key in values
        for c in components
        if getattr(c, "required", False) and getattr(c, "is_input", True)
    )


def headless_message(prompt: Prompt, why: str) -> str:
    refusal = prompt.extras.get("refusal")
    hint = f" (its --ui-values entry was refused: {refusal})" if refusal else ""
    return (
        f"The prompt of phase '{prompt.phase_key}' waits for an operator answer, but {why}"
        f"{hint}. Give the answer in --ui-values under \"{prompt.phase_key}\", or run with "
        "--json and answer on stdin."
    )


def format_refusal(errors: dict[str, str]) -> str:
    return "; ".join(f"{key}: {message}" for key, message in errors.items()) or "answer refused"


class PromptBroker:
    def __init__(
        self,
        emit: Callable[[Any], None],
        *,
        ui_values: dict[str, dict[str, Any]] | None = None,
        headless: bool = False,
        ui_timeout_s: float | None = None,
        warn: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.emit = emit
        self.ui_values = ui_values or {}
        self.headless = headless
        self.ui_timeout_s = ui_timeout_s
        self.warn = warn
        self.open_prompts: dict[str, Prompt] = {}

    # --- raising ---------------------------------------------------------------------
    def open(
        self,
        phase_key: str,
        slot: str | None,
        components: list[UiComponentSpec],
        *,
        waits: bool,
        validate: Validator,
        preset: dict[str, Any] | None = None,
    ) -> Prompt:
        """Raise a prompt (emits `ui_request`); auto-answers it from the preset values when
        they cover every required input and validate. Raises HeadlessPrompt when the prompt
        must wait, has no usable preset, and nobody can answer."""
        loop = asyncio.get_running_loop()
        prompt = Prompt(
            request_id=uuid.uuid4().hex,
            phase_key=phase_key,
            slot=slot,
            components=list(components),
            validate=validate,
            waits=waits,
            future=loop.create_future(),
        )
        if preset is None:
            preset = self.ui_values.get(phase_key)
        auto: AnswerResult | None = None
        refusal: str | None = None
        if waits and preset is not None and _covers_required(prompt.components, preset):
            result = validate(prompt.components, dict(preset))
            if result.ok:
                auto = result
            else:
                refusal = format_refusal(result.errors)
        prompt.extras["refusal"] = refusal
        if waits and auto is None and self.headless:
            raise HeadlessPrompt(headless_message(prompt, "this run is headless"))
        self.open_prompts[prompt.request_id] = prompt
        self.emit(
            UiRequest(
                request_id=prompt.request_id,
                phase_key=phase_key,
                components=[_component_dict(c) for c in prompt.components],
                slot=slot,
            )
        )
        if refusal and self.warn:
            self.warn(f"--ui-values for '{phase_key}' refused, waiting for an answer: {refusal}", phase_key)
        if auto is not None:
            self._accept(prompt, auto)
        elif not waits:
            prompt.future.cancel()  # display-only: nothing to wait for
        return prompt

    # --- answering -------------------------------------------------------------------
    def answer(self, request_id: str, values: dict[str, Any]) -> str | None:
        """Answer a prompt. None when accepted, else the reason it was refused."""
        prompt = self.open_prompts.get(request_id)
        if prompt is None or prompt.closed:
            return f"unknown request_id {request_id!r}: no prompt with that id is open"
        if not prompt.waits:
            return f"prompt {request_id!r} is display-only and takes no answer"
        if not isinstance(values, dict):
            return "values must be a JSON object of component key to value"
        result = prompt.validate(prompt.components, values)
        if not result.ok:
            return format_refusal(result.errors)
        self._accept(prompt, result)
        return None

    def _accept(self, prompt: Prompt, result: AnswerResult) -> None:
        prompt.answer = result
        if not prompt.future.done():
            prompt.future.set_result(result)
        self._close(prompt, "answered")

    def close(self, prompt: Prompt, reason: str) -> None:
        """Close a prompt without an answer (dismissed, stopped, timed out)."""
        if prompt.closed:
            return
        if not prompt.future.done():
            prompt.future.set_exception(PromptUnanswered(reason))
            # nobody may await it (display-only, dismissed): avoid "never retrieved" noise
            prompt.future.exception()
        self._close(prompt, reason)

    def _close(self, prompt: Prompt, reason: str) -> None:
        if prompt.closed:
            return
        prompt.closed = True
        prompt.close_reason = reason
        self.open_prompts.pop(prompt.request_id, None)
        self.emit(
            UiClosed(
                request_id=prompt.request_id, phase_key=prompt.phase_key, reason=reason, slot=prompt.slot
            )
        )

    def close_all(self, reason: str, *, include_identify: bool = True) -> None:
        for prompt in list(self.open_prompts.values()):
            if include_identify or prompt.phase_key != IDENTIFY_KEY:
                self.close(prompt, reason)

    def set_headless(self) -> None:
        """No front end can answer any more (stdin closed): waiting prompts fail fast."""
        self.headless = True
        for prompt in list(self.open_prompts.values()):
            if prompt.waits and not prompt.future.done():
                prompt.future.set_exception(
                    HeadlessPrompt(headless_message(prompt, "no front end can answer any more (stdin closed)"))
                )
                self._close(prompt, "headless")

    async def wait(self, prompt: Prompt, *, deadline_s: float | None = None) -> AnswerResult:
        """Wait for the answer. Raises PromptUnanswered, PromptTimedOut or HeadlessPrompt.

        `deadline_s` is the time left for the phase (its `timeout`); `--ui-timeout` applies
        on top of it. On expiry the prompt is closed."""
        if prompt.answer is not None:
            return prompt.answer
        if prompt.closed and not prompt.future.done():
            raise PromptUnanswered(prompt.close_reason or "closed")
        if self.headless and not prompt.future.done():
            self.close(prompt, "headless")
            raise HeadlessPrompt(headless_message(prompt, "this run is headless"))
        limits = [t for t in (deadline_s, self.ui_timeout_s) if t is not None]
        timeout = min(limits) if limits else None
        try:
            return await asyncio.wait_for(asyncio.shield(prompt.future), timeout)
        except TimeoutError:
            self.close(prompt, "timeout")
            raise PromptTimedOut(
                f"No answer to the prompt of '{prompt.phase_key}' within {timeout:g} s"
            ) from None
