"""Phase outcome (§7.2), next action (§7.3), run outcome (§7.4) and the upload mapping.

The engine works with seven outcomes; the wire formats know fewer. This module is the one
place that decides an attempt's outcome, what happens next, and how both are reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

EngineOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "STOP", "SKIP", "RETRY"]
NextAction = Literal["continue", "stop", "retry"]
Signal = Literal["fail", "skip", "retry", "stop"]

DEFAULT_RETRY_LIMIT = 3

# §7.4 upload mapping
_PAYLOAD_PHASE: dict[str, Literal["PASS", "FAIL", "SKIP", "ERROR"]] = {
    "PASS": "PASS",
    "FAIL": "FAIL",
    "ERROR": "ERROR",
    "TIMEOUT": "FAIL",
    "STOP": "FAIL",
    "SKIP": "SKIP",
    "RETRY": "FAIL",
}
_EVENT_PHASE: dict[str, Literal["PASS", "FAIL", "SKIP", "ERROR", "TIMEOUT", "ABORTED"]] = {
    "PASS": "PASS",
    "FAIL": "FAIL",
    "ERROR": "ERROR",
    "TIMEOUT": "TIMEOUT",
    "STOP": "ABORTED",
    "SKIP": "SKIP",
    "RETRY": "FAIL",
}
_RUN: dict[str, Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]] = {
    "PASS": "PASS",
    "FAIL": "FAIL",
    "ERROR": "ERROR",
    "TIMEOUT": "TIMEOUT",
    "STOP": "ABORTED",
}


def payload_phase_outcome(outcome: EngineOutcome) -> Literal["PASS", "FAIL", "SKIP", "ERROR"]:
    return _PAYLOAD_PHASE[outcome]


def event_phase_outcome(
    outcome: EngineOutcome,
) -> Literal["PASS", "FAIL", "SKIP", "ERROR", "TIMEOUT", "ABORTED"]:
    """The outcome `phase_finished` reports (run-protocol.md's set: STOP shows as ABORTED)."""
    return _EVENT_PHASE[outcome]


def run_payload_outcome(
    outcome: Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "STOP"],
) -> Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]:
    return _RUN[outcome]


@dataclass(frozen=True)
class PhaseVerdict:
    outcome: EngineOutcome
    error: str | None  # error text (counts for run rule 1)
    docstring: str | None  # what the payload's `docstring` carries


def timeout_docstring(timeout_ms: int | None) -> str:
    seconds = max(1, round((timeout_ms or 0) / 1000))
    return f"Phase timed out after {seconds} seconds"


def phase_outcome(
    *,
    error: str | None,
    timed_out: bool,
    signal: Signal | None,
    exit_code: int | None,
    check_failed: bool,
    retry_count: int,
    retry_limit: int,
    operator_stop: bool = False,
    timeout_ms: int | None = None,
) -> PhaseVerdict:
    """§7.2, first match wins. A timeout always wins over error text (Q8)."""
    if operator_stop:
        # An operator stop discards the error text first, so the phase ends STOP.
        error = None
    if timed_out:
        return PhaseVerdict("TIMEOUT", None, timeout_docstring(timeout_ms))
    if error:
        return PhaseVerdict("ERROR", error, error)
    if operator_stop or signal == "stop":
        return PhaseVerdict("STOP", None, None)
    if signal == "retry":
        if retry_count < retry_limit:
            return PhaseVerdict("RETRY", None, None)
        return PhaseVerdict(
            "FAIL", None, f"Phase exceeded retry limit ({retry_limit} retries)"
        )
    if check_failed:
        return PhaseVerdict("FAIL", None, None)
    if signal == "skip":
        return PhaseVerdict("SKIP", None, None)
    if signal == "fail" or (exit_code is not None and exit_code != 0):
        return PhaseVerdict("FAIL", None, None)
    return PhaseVerdict("PASS", None, None)


def next_action(
    outcome: EngineOutcome,
    *,
    then: dict[str, str | None] | None,
    on_first_failure: Literal["stop", "continue"],
) -> NextAction:
    """§7.3 before the retry checks (`can_retry` decides whether a retry really happens)."""
    if outcome == "STOP":
        return "stop"
    if outcome == "RETRY":
        return "retry"
    if outcome != "SKIP" and then:
        chosen = then.get(outcome.lower())
        if chosen in ("continue", "stop", "retry"):
            return chosen  # type: ignore[return-value]
    if outcome in ("PASS", "SKIP"):
        return "continue"
    return on_first_failure


RunEngineOutcome = Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "STOP"]


@dataclass(frozen=True)
class FinalAttempt:
    """What the run outcome needs to know of one (phase, slot)'s final attempt."""

    outcome: EngineOutcome
    error: str | None = None


def run_outcome(
    finals: Iterable[FinalAttempt],
    *,
    plug_failed: bool = False,
    operator_stop: bool = False,
    stop_action_without_teardown: bool = False,
) -> RunEngineOutcome:
    """§7.4 with tofu-tui's Q1 rule.

    `stop_action_without_teardown` is rule 2's *stop* action taken when no teardown job
    remained queued; the caller sets it only for stop actions that did not come from a
    failure (Q1: a run halted by FAIL/TIMEOUT/ERROR keeps that outcome).
    """
    finals = list(finals)
    if plug_failed or any(f.error for f in finals):
        return "ERROR"
    if operator_stop or stop_action_without_teardown:
        return "STOP"
    if any(f.outcome == "STOP" for f in finals):
        return "STOP"
    if any(f.outcome == "TIMEOUT" for f in finals):
        return "TIMEOUT"
    if any(f.outcome == "FAIL" for f in finals):
        return "FAIL"
    return "PASS"


_RUN_SEVERITY = ["PASS", "FAIL", "TIMEOUT", "ABORTED", "ERROR"]


def worst_run_outcome(
    outcomes: Iterable[Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]],
) -> Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"]:
    """The whole execution's outcome over several slots (drives the exit status)."""
    worst: Literal["PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED"] = "PASS"
    for outcome in outcomes:
        if _RUN_SEVERITY.index(outcome) > _RUN_SEVERITY.index(worst):
            worst = outcome
    return worst


EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "ERROR": 3, "TIMEOUT": 4, "ABORTED": 5}
