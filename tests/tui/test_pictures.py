"""Pictures in prompts (an `image` component, options with `image`) on a terminal that
cannot show them: the operator reads which file each one is and where to find it,
and still answers with the keyboard."""

from __future__ import annotations

from tests.tui.test_prompts import answer
from tofu_tui.models.commands import UiResponseCommand

LED_OPTIONS = [
    {"value": "green", "label": "Green", "image": "media/led_green.png"},
    {"value": "red", "label": "Red", "image": "media/led_red.png"},
    {"value": "off", "label": "Off", "image": "assets/photos/2026/bench-07/reference/led_off.png"},
]


async def test_each_option_names_its_picture_and_the_answer_is_its_value() -> None:
    radio = {"type": "radio", "key": "led", "label": "LED colour", "required": True, "options": LED_OPTIONS}
    _, _, text = await answer([radio], [])
    assert "Green  [media/led_green.png]" in text
    assert "Red  [media/led_red.png]" in text
    # A long reference keeps its end: the file name tells the pictures apart.
    assert "Off  […/2026/bench-07/reference/led_off.png]" in text
    assert text.count("names each option's picture (not shown in a terminal)") == 1
    backend, _, _ = await answer([radio], ["down", "enter", "ctrl+s"])
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"led": "red"})]


async def test_pictures_in_a_checklist_and_a_select_the_hint_shown_once() -> None:
    checklist = {"type": "checklist", "key": "seen", "label": "Seen", "options": LED_OPTIONS[:2]}
    select = {"type": "select", "key": "fx", "label": "Fixture",
              "options": [{"value": "a", "label": "Jig A", "image": "https://example.com/jig-a.jpg"}]}
    _, _, text = await answer([checklist, select], ["tab", "enter"])  # the select's list open
    assert "Green  [media/led_green.png]" in text
    assert "Jig A  [https://example.com/jig-a.jpg]" in text
    assert text.count("names each option's picture") == 1
    backend, _, _ = await answer([checklist, select], ["down", "space", "ctrl+s"])
    assert backend.sent == [UiResponseCommand(request_id="req-1", values={"seen": ["red"]})]


async def test_a_picture_component_shows_its_file_or_link_and_where_to_look() -> None:
    components = [
        {"type": "image", "key": "a", "label": "Wiring", "default_value": "docs/wiring.png"},
        {"type": "image", "key": "b", "label": "Datasheet figure", "default_value": "https://example.com/fig3.png"},
        {"type": "image", "key": "c", "label": "Inline", "default_value": "data:image/png;base64," + "A" * 4000},
    ]
    _, _, text = await answer(components, [])
    assert "Picture: Wiring  docs/wiring.png" in text
    assert "(not shown in a terminal; the file is in the procedure's folder)" in text
    assert "Picture: Datasheet figure  https://example.com/fig3.png" in text
    assert "(not shown in a terminal; open the link in a browser)" in text
    assert "Picture: Inline  (embedded; not shown in a terminal)" in text
    assert "AAAA" not in text  # an embedded picture is not dumped as text
