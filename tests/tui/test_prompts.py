"""Answering each prompt component type (procedure-format §2.5) from the keyboard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui import scenarios
from tests.tui.conftest import screen_text, settle
from tests.tui.scripted import ScriptedBackend, fixed_clock
from tofu_tui.models.commands import UiResponseCommand
from tofu_tui.tui.app import StationConsole
from tofu_tui.tui.forms import PromptForm

OPTIONS = [{"value": "a", "label": "Alpha"}, {"value": "b", "label": "Bravo"}, {"value": "c", "label": "Charlie"}]

CASES: list[tuple[str, dict[str, Any], list[str], Any]] = [
    ("text_input", {"type": "text_input", "key": "k", "label": "Badge"}, [*" B-7 ", "enter"], "B-7"),
    ("number_input", {"type": "number_input", "key": "k", "label": "Ripple", "min": 0, "max": 100}, [*"12.5", "enter"], 12.5),
    ("switch", {"type": "switch", "key": "k", "label": "Fan spins"}, ["space", "ctrl+s"], True),
    ("textarea", {"type": "textarea", "key": "k", "label": "Notes"}, [*"hi", "enter", *"yo", "ctrl+s"], "hi\nyo"),
    ("radio", {"type": "radio", "key": "k", "label": "LED", "options": OPTIONS}, ["down", "enter", "ctrl+s"], "b"),
    ("select", {"type": "select", "key": "k", "label": "Fixture", "options": OPTIONS}, ["enter", "down", "down", "enter", "ctrl+s"], "b"),
    ("multiselect", {"type": "multiselect", "key": "k", "label": "Defects", "options": OPTIONS}, ["space", "down", "down", "space", "ctrl+s"], ["a", "c"]),
    ("checklist", {"type": "checklist", "key": "k", "label": "Checks", "options": OPTIONS}, ["down", "space", "ctrl+s"], ["b"]),
    ("slider", {"type": "slider", "key": "k", "label": "Brightness", "min": 0, "max": 10, "step": 2}, ["right", "right", "ctrl+s"], 4.0),
]


async def answer(components: list[dict[str, Any]], keys: list[str], **replies: Any) -> tuple[ScriptedBackend, StationConsole, str]:
    backend = ScriptedBackend(
        scenarios.idle_status(),
        [*scenarios.run_in_progress(), scenarios.prompt_request(components)],
        replies=replies,
    )
    app = StationConsole(backend, clock=fixed_clock, status_interval=3600)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await settle(pilot, backend)
        assert isinstance(app.screen, PromptForm)
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        text = screen_text(app)
        still_open = isinstance(app.screen, PromptForm)
    return backend, app, text + ("\n[form open]" if still_open else "")


@pytest.mark.parametrize(("kind", "component", "keys", "expected"), CASES, ids=[case[0] for case in CASES])
async def test_each_input_type_answers_from_the_keyboard(kind: str, component: dict[str, Any], keys: list[str], expected: Any) -> None:
    backend, _, text = await answer([component], keys)
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"k": expected})], text
    assert "[form open]" not in text


@pytest.mark.parametrize(
    ("component", "keys", "message"),
    [
        ({"type": "text_input", "key": "k", "label": "Badge", "required": True}, ["enter"], "Required."),
        ({"type": "text_input", "key": "k", "label": "Badge", "min_length": 4}, [*"abc", "enter"], "At least 4 characters."),
        ({"type": "number_input", "key": "k", "label": "Ripple"}, [*"12x", "enter"], "Enter a number."),
        ({"type": "number_input", "key": "k", "label": "Ripple", "max": 100}, [*"150", "enter"], "Must be at most 100."),
        ({"type": "number_input", "key": "k", "label": "Ripple", "min": 5}, [*"-1", "enter"], "Must be at least 5."),
        ({"type": "checklist", "key": "k", "label": "Checks", "required": True, "options": OPTIONS}, ["ctrl+s"], "Choose at least one."),
        ({"type": "select", "key": "k", "label": "Fixture", "required": True, "options": [{"value": "x", "image": "x.png"}]}, ["ctrl+s"], "Choose one."),
    ],
    ids=["required-text", "min-length", "not-a-number", "above-max", "below-min", "required-checklist", "required-select"],
)
async def test_what_the_operator_must_fix_is_shown_and_nothing_is_sent(component: dict[str, Any], keys: list[str], message: str) -> None:
    backend, _, text = await answer([component], keys)
    assert backend.sent == []
    assert message in text
    assert "[form open]" in text


async def test_optional_blank_inputs_are_left_to_their_defaults() -> None:
    components = [
        {"type": "text_input", "key": "note", "label": "Note"},
        {"type": "number_input", "key": "n", "label": "N"},
        {"type": "select", "key": "s", "label": "S", "options": OPTIONS},
        {"type": "switch", "key": "sw", "label": "Switch"},
        {"type": "slider", "key": "sl", "label": "Slider", "min": 3, "max": 9},
    ]
    backend, _, _ = await answer(components, ["ctrl+s"])
    # Blank text/number/select stay out (the engine applies default_value); a switch
    # starts false and a slider at min, as §9 says interactive surfaces do.
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"sw": False, "sl": 3.0})]


async def test_defaults_prefill_the_form() -> None:
    components = [
        {"type": "text_input", "key": "t", "default_value": "hello"},
        {"type": "number_input", "key": "n", "default_value": 2.5},
        {"type": "switch", "key": "sw", "default_value": True},
        {"type": "radio", "key": "r", "required": True, "options": OPTIONS},
        {"type": "multiselect", "key": "m", "default_value": ["b", "c"], "options": OPTIONS},
        {"type": "checklist", "key": "c", "default_value": "a,c", "options": OPTIONS},
        {"type": "slider", "key": "sl", "min": 0, "max": 10, "default_value": 7},
    ]
    backend, _, _ = await answer(components, ["ctrl+s"])
    assert backend.sent == [
        UiResponseCommand(
            request_id="req-1",
            values={"t": "hello", "n": 2.5, "sw": True, "r": "a", "m": ["b", "c"], "c": ["a", "c"], "sl": 7.0},
        )
    ]


async def test_display_only_prompt_shows_text_image_and_progress() -> None:
    components = [
        {"type": "text", "key": "msg", "default_value": "Flashing firmware, do not unplug."},
        {"type": "image", "key": "img", "label": "Wiring diagram", "default_value": "docs/wiring.png"},
        {"type": "progress", "key": "p", "label": "Flash", "default_value": 30, "max": 60},
    ]
    backend, _, text = await answer(components, [])
    assert "Flashing firmware, do not unplug." in text
    assert "Wiring diagram  docs/wiring.png" in text
    assert "50%" in text
    assert backend.sent == []
