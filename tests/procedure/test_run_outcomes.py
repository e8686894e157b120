"""§7.2 phase outcome (first match wins), §7.3 next action, §7.4 run outcome + mapping."""

from __future__ import annotations

from typing import Any

import pytest

from tofu_tui.procedure.outcomes import (
    EXIT_CODES,
    FinalAttempt,
    event_phase_outcome,
    next_action,
    payload_phase_outcome,
    phase_outcome,
    run_outcome,
    run_payload_outcome,
    worst_run_outcome,
)


def verdict(**kwargs: Any) -> tuple[str, str | None, str | None]:
    base: dict[str, Any] = {
        "error": None,
        "timed_out": False,
        "signal": None,
        "exit_code": None,
        "check_failed": False,
        "retry_count": 0,
        "retry_limit": 3,
    }
    base.update(kwargs)
    v = phase_outcome(**base)
    return v.outcome, v.error, v.docstring


def test_phase_outcome_first_match_wins() -> None:
    assert verdict(error="Traceback", signal="fail", check_failed=True) == ("ERROR", "Traceback", "Traceback")
    # Q8: a timeout is always TIMEOUT, even when the worker also reported error text
    assert verdict(timed_out=True, error="killed", timeout_ms=2400) == (
        "TIMEOUT",
        None,
        "Phase timed out after 2 seconds",
    )
    assert verdict(timed_out=True, timeout_ms=200)[2] == "Phase timed out after 1 seconds"
    assert verdict(signal="stop", check_failed=True)[0] == "STOP"
    assert verdict(operator_stop=True)[0] == "STOP"
    assert verdict(signal="retry", check_failed=True)[0] == "RETRY"
    assert verdict(signal="retry", retry_count=3, retry_limit=3) == (
        "FAIL",
        None,
        "Phase exceeded retry limit (3 retries)",
    )
    assert verdict(check_failed=True, signal="skip")[0] == "FAIL"
    assert verdict(signal="skip")[0] == "SKIP"
    assert verdict(signal="fail")[0] == "FAIL"
    assert verdict(exit_code=2)[0] == "FAIL"
    assert verdict(exit_code=0)[0] == "PASS"
    assert verdict() == ("PASS", None, None)


def test_operator_stop_discards_error_text_but_not_timeout() -> None:
    assert verdict(operator_stop=True, error="KeyboardInterrupt") == ("STOP", None, None)
    assert verdict(operator_stop=True, timed_out=True)[0] == "TIMEOUT"


@pytest.mark.parametrize(
    ("outcome", "then", "policy", "expected"),
    [
        ("STOP", {"stop": None, "pass": "continue"}, "continue", "stop"),
        ("RETRY", {"fail": "continue"}, "stop", "retry"),
        ("PASS", None, "stop", "continue"),
        ("SKIP", {"pass": "stop"}, "stop", "continue"),  # SKIP ignores then
        ("FAIL", None, "stop", "stop"),
        ("FAIL", None, "continue", "continue"),
        ("ERROR", None, "continue", "continue"),
        ("TIMEOUT", None, "stop", "stop"),
        ("FAIL", {"fail": "continue"}, "stop", "continue"),
        ("ERROR", {"error": "retry"}, "stop", "retry"),
        ("TIMEOUT", {"timeout": "retry"}, "continue", "retry"),
        ("PASS", {"pass": "stop"}, "continue", "stop"),
        ("PASS", {"fail": "stop"}, "stop", "continue"),
    ],
)
def test_next_action(outcome: str, then: dict[str, str | None] | None, policy: str, expected: str) -> None:
    assert next_action(outcome, then=then, on_first_failure=policy) == expected  # type: ignore[arg-type]


def finals(*outcomes: str, error_on: str | None = None) -> list[FinalAttempt]:
    return [FinalAttempt(o, "boom" if o == error_on else None) for o in outcomes]  # type: ignore[arg-type]


def test_run_outcome_rules_in_order() -> None:
    assert run_outcome(finals("PASS", "STOP", "ERROR", error_on="ERROR")) == "ERROR"
    assert run_outcome(finals("PASS"), plug_failed=True) == "ERROR"
    assert run_outcome(finals("FAIL", "TIMEOUT"), operator_stop=True) == "STOP"
    assert run_outcome(finals("PASS"), stop_action_without_teardown=True) == "STOP"
    assert run_outcome(finals("STOP", "TIMEOUT", "FAIL")) == "STOP"
    assert run_outcome(finals("TIMEOUT", "FAIL")) == "TIMEOUT"
    assert run_outcome(finals("FAIL", "PASS", "SKIP")) == "FAIL"
    assert run_outcome(finals("PASS", "SKIP", "RETRY")) == "PASS"  # a suppressed RETRY passes
    assert run_outcome([]) == "PASS"


def test_upload_mapping_table() -> None:
    table = {
        "PASS": ("PASS", "PASS"),
        "FAIL": ("FAIL", "FAIL"),
        "ERROR": ("ERROR", "ERROR"),
        "TIMEOUT": ("TIMEOUT", "FAIL"),
        "STOP": ("ABORTED", "FAIL"),
        "SKIP": (None, "SKIP"),
        "RETRY": (None, "FAIL"),
    }
    for engine, (run, phase) in table.items():
        assert payload_phase_outcome(engine) == phase  # type: ignore[arg-type]
        if run is not None:
            assert run_payload_outcome(engine) == run  # type: ignore[arg-type]
    assert event_phase_outcome("STOP") == "ABORTED"
    assert event_phase_outcome("TIMEOUT") == "TIMEOUT"


def test_exit_codes_and_worst_outcome() -> None:
    assert EXIT_CODES == {"PASS": 0, "FAIL": 1, "ERROR": 3, "TIMEOUT": 4, "ABORTED": 5}
    assert worst_run_outcome(["PASS", "FAIL"]) == "FAIL"
    assert worst_run_outcome(["TIMEOUT", "FAIL"]) == "TIMEOUT"
    assert worst_run_outcome(["ABORTED", "ERROR"]) == "ERROR"
    assert worst_run_outcome([]) == "PASS"
