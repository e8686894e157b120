"""Operator prompts (procedure-format §2.5, §9) as modal forms.

Every input and display component type has a field here. The engine is the judge of
an answer: the form pre-checks only what an operator can fix at once (a required
field left empty, a number that is not one, a number out of range), then shows the
reason the station gives when it refuses an answer, under the field it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    RadioButton,
    RadioSet,
    Select,
    SelectionList,
    Static,
    Switch,
    TextArea,
)

from tofu_tui.models.status import UnitField, UnitInfo

INPUT_TYPES = frozenset(
    {"text_input", "number_input", "switch", "textarea", "radio", "select", "multiselect", "checklist", "slider"}
)
DISPLAY_TYPES = frozenset({"text", "image", "progress"})

Submit = Callable[[dict[str, Any]], Awaitable[str | None]]


def component_key(component: dict[str, Any]) -> str:
    key = component.get("key")
    if key:
        return str(key)
    return str(component.get("type", "field")).replace("_", "")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Slider(Widget, can_focus=True):
    """A number between `min` and `max`: ←/→ move by `step`, Home/End jump."""

    BINDINGS: ClassVar = [
        Binding("left,minus", "step(-1)", "Less", show=False),
        Binding("right,plus,equals_sign", "step(1)", "More", show=False),
        Binding("pageup", "step(10)", show=False),
        Binding("pagedown", "step(-10)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(1)", show=False),
    ]
    DEFAULT_CSS = """
    Slider { height: 1; width: 1fr; }
    Slider:focus { background: $boost; text-style: bold; }
    """

    value: reactive[float] = reactive(0.0)

    def __init__(self, minimum: float, maximum: float, step: float, value: float, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.minimum = minimum
        self.maximum = max(maximum, minimum)
        self.step = step if step > 0 else max((self.maximum - self.minimum) / 100, 1e-9)
        self.set_reactive(Slider.value, self._clamp(value))

    def _clamp(self, value: float) -> float:
        return min(max(value, self.minimum), self.maximum)

    def action_step(self, steps: int) -> None:
        self.value = self._clamp(round((self.value + steps * self.step) / self.step) * self.step)

    def action_jump(self, end: int) -> None:
        self.value = self.maximum if end else self.minimum

    def render(self) -> Text:
        label = f" {_format_number(self.value)}"
        width = max(self.content_size.width - len(label) - 2, 4)
        span = self.maximum - self.minimum
        position = 0 if span <= 0 else round((self.value - self.minimum) / span * (width - 1))
        text = Text("├")
        text.append("━" * position, style="cyan")
        text.append("●", style="bold cyan")
        text.append("─" * (width - 1 - position))
        text.append("┤")
        text.append(label, style="bold")
        return text


@dataclass
class Field:
    """One component in the form: how to read, write and flag it."""

    component: dict[str, Any]
    key: str
    widget: Widget | None
    error: Static | None

    @property
    def type(self) -> str:
        return str(self.component.get("type"))

    @property
    def required(self) -> bool:
        return bool(self.component.get("required"))

    def options(self) -> list[tuple[str, str]]:
        result = []
        for option in self.component.get("options") or []:
            if isinstance(option, dict):
                value = str(option.get("value"))
                result.append((value, str(option.get("label") or value)))
            else:
                result.append((str(option), str(option)))
        return result

    def captions(self) -> list[tuple[str, Text]]:
        """(value, what the operator reads): the label, and an option's picture as the
        file it names (a terminal shows no pictures; see `image_caption`)."""
        raw = self.component.get("options") or []
        result = []
        for (value, label), option in zip(self.options(), raw, strict=True):
            caption = Text(label)
            image = option.get("image") if isinstance(option, dict) else None
            if image:
                caption.append(f"  {image_caption(str(image))}", style="italic")
            result.append((value, caption))
        return result

    @property
    def has_option_images(self) -> bool:
        return any(isinstance(option, dict) and option.get("image") for option in self.component.get("options") or [])

    # --- values ---------------------------------------------------------------

    def read(self) -> Any:
        widget = self.widget
        if isinstance(widget, Input):
            text = widget.value
            return text.strip() if self.component.get("trim", True) else text
        if isinstance(widget, TextArea):
            text = widget.text
            return text.strip() if self.component.get("trim", True) else text
        if isinstance(widget, Switch):
            return widget.value
        if isinstance(widget, Slider):
            return widget.value
        if isinstance(widget, RadioSet):
            index = widget.pressed_index
            options = self.options()
            return options[index][0] if 0 <= index < len(options) else None
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        if isinstance(widget, SelectionList):
            chosen = set(widget.selected)
            return [value for value, _ in self.options() if value in chosen]
        return None

    def write(self, value: Any) -> None:
        """Apply a `ui_update`: display content or an input's current value."""
        widget = self.widget
        if self.type == "progress" and isinstance(widget, ProgressBar):
            number = _number(value)
            if number is not None:
                widget.update(progress=number)
        elif self.type in ("text", "image") and isinstance(widget, Static):
            self.component = {**self.component, "default_value": value}
            widget.update(display_content(self.component))
        elif isinstance(widget, Input):
            widget.value = "" if value is None else (_format_number(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value))
        elif isinstance(widget, TextArea):
            widget.text = "" if value is None else str(value)
        elif isinstance(widget, Switch):
            widget.value = value is True or str(value).lower() == "true"
        elif isinstance(widget, Slider):
            number = _number(value)
            if number is not None:
                widget.value = widget._clamp(number)
        elif isinstance(widget, RadioSet):
            for index, (option, _) in enumerate(self.options()):
                if option == str(value):
                    buttons = list(widget.query(RadioButton))
                    buttons[index].value = True
        elif isinstance(widget, Select):
            if any(option == str(value) for option, _ in self.options()):
                widget.value = str(value)
        elif isinstance(widget, SelectionList):
            wanted = set(value.split(",") if isinstance(value, str) else [str(v) for v in value or []])
            widget.deselect_all()
            for option in wanted:
                if any(option == known for known, _ in self.options()):
                    widget.select(option)

    def check(self) -> str | None:
        """What an operator must fix before the answer can go, or None."""
        value = self.read()
        if self.type == "number_input":
            if value in ("", None):
                return "Required." if self.required else None
            number = _number(value)
            if number is None:
                return "Enter a number."
            return _range_problem(self.component, number)
        if self.type in ("text_input", "textarea"):
            if self.required and not value:
                return "Required."
            if value:
                min_length = _number(self.component.get("min_length"))
                max_length = _number(self.component.get("max_length"))
                if min_length is not None and len(value) < min_length:
                    return f"At least {int(min_length)} characters."
                if max_length is not None and len(value) > max_length:
                    return f"At most {int(max_length)} characters."
            return None
        if self.type in ("radio", "select") and self.required and value is None:
            return "Choose one."
        if self.type in ("multiselect", "checklist") and self.required and not value:
            return "Choose at least one."
        return None

    def answer(self) -> tuple[bool, Any]:
        """(include?, value) for the `ui_response`; blank optional inputs are left out
        so the engine applies their defaults."""
        value = self.read()
        if self.type == "number_input":
            number = _number(value)
            return (number is not None, number)
        if self.type in ("text_input", "textarea", "radio", "select"):
            return (value not in ("", None), value)
        return (True, value)

    def flag(self, message: str | None) -> None:
        if self.error is not None:
            self.error.update(message or "")
            self.error.display = bool(message)


def field_messages(reason: str, keys: list[str]) -> dict[str, str]:
    """Split a refusal like the engine's `"led: LED colour: an answer is required;
    note: Note: too long"` into a message per known key. Parts naming no known key
    stay with the part before them (a message may itself contain "; ")."""
    known = sorted({key for key in keys if key}, key=len, reverse=True)
    if not known:
        return {}
    starts = list(re.finditer(r"(?:^|;\s*|\n)(" + "|".join(map(re.escape, known)) + r"):\s*", reason))
    messages: dict[str, str] = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(reason)
        messages[match.group(1)] = reason[match.end() : end].strip()
    return messages


def _range_problem(component: dict[str, Any], number: float) -> str | None:
    low = _number(component.get("min"))
    high = _number(component.get("max"))
    if low is not None and number < low:
        return f"Must be at least {_format_number(low)}."
    if high is not None and number > high:
        return f"Must be at most {_format_number(high)}."
    return None


def display_content(component: dict[str, Any]) -> Text:
    kind = component.get("type")
    content = component.get("default_value")
    if kind == "image":
        text = Text("Picture: ", style="bright_black")
        alt = component.get("label") or component.get("description")
        text.append(str(alt or "image"), style="bold")
        if content:
            reference = str(content)
            if reference.startswith("data:"):
                text.append("  (embedded; not shown in a terminal)", style="bright_black")
            else:
                text.append(f"  {reference}", style="bright_black underline")
                text.append(f"\n{NO_PICTURES_URL if _is_url(reference) else NO_PICTURES_FILE}", style="bright_black")
        return text
    text = Text(str(content if content is not None else component.get("label") or ""))
    colour = component.get("color")
    if colour and colour not in ("default", "zinc"):
        text.stylize(_COLOURS.get(str(colour), ""))
    if component.get("size") in ("lg", "xl", "2xl", "3xl", "4xl"):
        text.stylize("bold")
    return text


# A terminal over SSH (256 colours, no graphics protocol) cannot show a picture, so
# the console names the file and says where to look, rather than leave an operator
# choosing between bare labels.
NO_PICTURES_FILE = "(not shown in a terminal; the file is in the procedure's folder)"
NO_PICTURES_URL = "(not shown in a terminal; open the link in a browser)"
NO_PICTURES_OPTIONS = "[…] names each option's picture (not shown in a terminal)."
IMAGE_CAPTION_WIDTH = 40


def _is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


def image_caption(reference: str) -> str:
    """An option's picture as a short caption: the file it names, its tail kept when
    long (the file name is what tells pictures apart)."""
    if reference.startswith("data:"):
        return "[embedded picture]"
    if len(reference) > IMAGE_CAPTION_WIDTH:
        tail = reference[-(IMAGE_CAPTION_WIDTH - 1) :]
        cut = tail.find("/")
        reference = "…" + (tail[cut:] if 0 <= cut < len(tail) - 1 else tail)  # whole folder names
    return f"[{reference}]"


# §2.5 colour names mapped to ANSI colours (readable on 256- and 16-colour terminals).
_COLOURS = {
    "red": "red",
    "orange": "dark_orange",
    "yellow": "yellow",
    "green": "green",
    "lime": "bright_green",
    "sky": "bright_cyan",
    "blue": "blue",
    "violet": "medium_purple",
    "purple": "magenta",
    "pink": "bright_magenta",
}


def initial_value(component: dict[str, Any], update: Any = None, has_update: bool = False) -> Any:
    if has_update:
        return update
    default = component.get("default_value")
    kind = component.get("type")
    if default is not None:
        return default
    if kind in ("radio", "select") and component.get("required"):
        options = component.get("options") or []
        has_images = any(isinstance(o, dict) and o.get("image") for o in options)
        if options and not has_images:
            first = options[0]
            return first.get("value") if isinstance(first, dict) else first
    return None


class PromptForm(ModalScreen[bool]):
    """A modal form for one `ui_request` (or the identify-unit form).

    Enter in a one-line field submits when nothing is left to fix (a scanner ends
    its code with Enter), else it moves to the first field that needs attention.
    Escape puts the prompt aside; it stays open on the station and `a` brings it
    back. Dismisses with True once the station accepted the answer.

    A barcode scanner types a whole burst (`SN123<Tab>PN456<Enter>`) faster than the
    fields take it. Textual hands each key to the field focused when the app reads the
    key, while that field handles its keys later, from its own queue: a Tab would move
    the focus only after the app had already handed the next code to the old field.
    So Tab, shift+Tab and Enter are priority bindings here: the app runs them in key
    order, and each first waits until the focused field has taken the keys before it.
    """

    BINDINGS: ClassVar = [
        Binding("ctrl+s", "submit", "Submit"),
        Binding("escape", "later", "Later"),
        Binding("tab", "next_field", "Next field", show=False, priority=True),
        Binding("shift+tab", "previous_field", "Previous field", show=False, priority=True),
        Binding("enter", "enter", "Submit", show=False, priority=True),
    ]
    # How long a key waits for the field before it to catch up (it takes microseconds;
    # the bound only keeps a wedged widget from freezing the keyboard).
    CATCH_UP_S = 1.0

    DEFAULT_CSS = """
    PromptForm { align: center middle; }
    PromptForm > #dialog {
        width: 90%; max-width: 100; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    PromptForm #title { text-style: bold; height: 1; color: $accent; dock: top; }
    PromptForm #fields { height: auto; max-height: 1fr; }
    PromptForm .label { text-style: bold; }
    PromptForm Input, PromptForm TextArea, PromptForm Select, PromptForm RadioSet, PromptForm SelectionList, PromptForm Slider {
        background: $boost; margin-bottom: 1;
    }
    PromptForm .display { margin-bottom: 1; }
    PromptForm ProgressBar { margin-bottom: 1; }
    PromptForm .help { color: $text-muted; }
    PromptForm .error { color: red; text-style: bold; display: none; }
    PromptForm #form-error { color: red; text-style: bold; display: none; height: auto; }
    PromptForm #buttons { height: 1; align-horizontal: right; dock: bottom; }
    PromptForm #buttons Button { margin-left: 1; min-width: 12; }
    PromptForm #keys { width: 1fr; }
    PromptForm RadioSet, PromptForm SelectionList { height: auto; max-height: 8; width: 1fr; }
    PromptForm Switch { height: 1; border: none; padding: 0; width: auto; }
    PromptForm Switch:focus { border: none; background: $boost; }
    PromptForm Input { width: 1fr; }
    PromptForm .affix { width: auto; padding: 0 1; }
    PromptForm .row { height: auto; }
    PromptForm .field { height: auto; }
    """

    def __init__(
        self,
        title: str,
        components: list[dict[str, Any]],
        submit: Submit,
        *,
        request_id: str | None = None,
        updates: dict[str, Any] | None = None,
        submit_label: str = "Submit",
        later_label: str = "Later",
    ) -> None:
        super().__init__()
        self.form_title = title
        self.components = components
        self.request_id = request_id
        self._submit = submit
        # The caller's live dict, not a copy: `ui_update`s that land before the form
        # is built are still shown (after, `apply_update` sets the widgets).
        self._updates = updates if updates is not None else {}
        self.submit_label = submit_label
        self.later_label = later_label
        self.fields: list[Field] = []
        self._busy = False
        self._pictures_explained = False

    # --- building ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.form_title), id="title")
            yield Static(id="form-error")
            with VerticalScroll(id="fields"):
                for index, component in enumerate(self.components):
                    # One box per field: focus scrolls the whole of it (label, hint,
                    # message) into view, not just the input under a hidden label.
                    with Vertical(classes="field"):
                        yield from self._compose_field(index, component)
            with Horizontal(id="buttons"):
                yield Static(Text(f"Enter or ctrl+s: {self.submit_label.lower()} · Esc: {self.later_label.lower()}", style="bright_black"), id="keys")
                yield Button(self.later_label, id="later", compact=True)
                yield Button(self.submit_label, id="submit", variant="primary", compact=True)

    def _compose_field(self, index: int, component: dict[str, Any]) -> ComposeResult:
        kind = str(component.get("type"))
        key = component_key(component)
        label = component.get("label")
        required = bool(component.get("required"))
        has_update = key in self._updates
        value = initial_value(component, self._updates.get(key), has_update)
        wid = f"field-{index}"
        if kind in DISPLAY_TYPES:
            if kind == "progress":
                if label:
                    yield Label(str(label), classes="label")
                total = _number(component.get("max")) or 100.0
                bar = ProgressBar(total=total, show_eta=False, id=wid)
                number = _number(value)
                bar.progress = number or 0.0
                self.fields.append(Field(component, key, bar, None))
                yield bar
            else:
                if has_update:
                    component = {**component, "default_value": value}
                static = Static(display_content(component), id=wid, classes="display")
                self.fields.append(Field(component, key, static, None))
                yield static
            return
        if kind not in INPUT_TYPES:
            static = Static(Text(f"({kind}: not shown on this console)", style="bright_black"))
            self.fields.append(Field(component, key, None, None))
            yield static
            return
        if kind != "switch":
            caption = Text(str(label or key))
            if required:
                caption.append(" *", style="red")
            yield Label(caption, classes="label")
        description = component.get("description")
        widget: Widget
        if kind in ("text_input", "number_input"):
            text_value = "" if value is None else (_format_number(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value))
            placeholder = str(component.get("placeholder") or "")
            if kind == "number_input" and not placeholder:
                bounds = [
                    f"≥ {_format_number(low)}" for low in [_number(component.get("min"))] if low is not None
                ] + [f"≤ {_format_number(high)}" for high in [_number(component.get("max"))] if high is not None]
                placeholder = "number " + " ".join(bounds) if bounds else "number"
            max_length = _number(component.get("max_length"))
            widget = Input(
                text_value,
                placeholder=placeholder,
                id=wid,
                max_length=int(max_length) if kind == "text_input" and max_length else 0,
                compact=True,
            )
            prefix, suffix = component.get("prefix"), component.get("suffix")
            if prefix or suffix:
                with Horizontal(classes="row"):
                    if prefix:
                        yield Static(str(prefix), classes="affix")
                    yield widget
                    if suffix:
                        yield Static(str(suffix), classes="affix")
            else:
                yield widget
        elif kind == "textarea":
            widget = TextArea("" if value is None else str(value), id=wid, soft_wrap=True, compact=True)
            rows = _number(component.get("rows"))
            widget.styles.height = max(int(rows or 3), 1)
            yield widget
        elif kind == "switch":
            widget = Switch(value=value is True or str(value).lower() == "true", id=wid)
            with Horizontal(classes="row"):
                yield widget
                caption = Text(str(label or key))
                if required:
                    caption.append(" *", style="red")
                yield Static(caption, classes="affix")
        elif kind == "radio":
            captions = Field(component, key, None, None).captions()
            widget = RadioSet(*[RadioButton(text, value=str(value) == option) for option, text in captions], id=wid, compact=True)
            yield widget
        elif kind == "select":
            captions = Field(component, key, None, None).captions()
            chosen = str(value) if value is not None and any(str(value) == o for o, _ in captions) else Select.NULL
            widget = Select([(text, option) for option, text in captions], value=chosen, id=wid, allow_blank=True, prompt=str(component.get("placeholder") or "Choose…"), compact=True)
            yield widget
        elif kind in ("multiselect", "checklist"):
            captions = Field(component, key, None, None).captions()
            ticked = set(value.split(",") if isinstance(value, str) else [str(v) for v in value or []])
            widget = SelectionList[str](*[(text, option, option in ticked) for option, text in captions], id=wid, compact=True)
            yield widget
        else:  # slider
            low = _number(component.get("min"))
            high = _number(component.get("max"))
            low = 0.0 if low is None else low
            high = 100.0 if high is None else high
            step = _number(component.get("step")) or 1.0
            start = _number(value)
            widget = Slider(low, high, step, low if start is None else start, id=wid)
            yield widget
        if description:
            yield Static(Text(str(description)), classes="help")
        if Field(component, key, None, None).has_option_images and not self._pictures_explained:
            self._pictures_explained = True  # once a form is enough
            yield Static(Text(NO_PICTURES_OPTIONS), classes="help")
        error = Static(classes="error", id=f"error-{index}")
        self.fields.append(Field(component, key, widget, error))
        yield error

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        box = next((node for node in event.widget.ancestors_with_self if node.has_class("field")), None)
        try:  # a focus can still arrive while the form is being taken down
            fields = self.query_one("#fields", VerticalScroll)
        except NoMatches:
            return
        if box is not None:
            # After the focus's own scroll (to the input alone), once laid out.
            self.call_after_refresh(fields.scroll_to_widget, box, animate=False)

    def on_mount(self) -> None:
        # Focus moves at once here (`set_focus`), not later as `widget.focus()` does:
        # keys already waiting in the app (a scan) must find the field they belong to.
        try:  # a form closed before it was mounted has no widgets left
            fields = self.query_one("#fields", VerticalScroll)
            submit = self.query_one("#submit", Button)
        except NoMatches:
            return
        first = next((f.widget for f in self.fields if f.widget is not None and f.widget.focusable), None)
        self.set_focus(first if first is not None else submit, scroll_visible=False)
        # The form opens at its top: what comes before the first field (an instruction,
        # a picture) is read first.
        self.call_after_refresh(fields.scroll_home, animate=False, immediate=True)

    # --- live updates ------------------------------------------------------------

    def apply_update(self, key: str, value: Any) -> None:
        for field in self.fields:
            if field.key == key:
                field.write(value)

    # --- submitting --------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for field in self.fields:
            if field.type in INPUT_TYPES and field.widget is not None:
                include, value = field.answer()
                if include:
                    result[field.key] = value
        return result

    def precheck(self) -> Field | None:
        """Flag every field with a problem; return the first one."""
        first: Field | None = None
        for field in self.fields:
            if field.type not in INPUT_TYPES or field.widget is None:
                continue
            problem = field.check()
            field.flag(problem)
            if problem and first is None:
                first = field
        return first

    def show_refusal(self, reason: str) -> None:
        """Show the station's reason; the parts naming a field also go under it."""
        banner = self.query_one("#form-error", Static)
        banner.update(Text(reason))
        banner.display = True
        focused = False
        for key, message in field_messages(reason, [field.key for field in self.fields]).items():
            for field in self.fields:
                if field.key == key:
                    label = str(field.component.get("label") or "")
                    if label and message.startswith(f"{label}: "):
                        message = message[len(label) + 2 :]
                    field.flag(message)
                    if not focused and field.widget is not None:
                        self.set_focus(field.widget)
                        focused = True

    async def action_submit(self) -> None:
        if self._busy:
            return
        problem = self.precheck()
        if problem is not None:
            if problem.widget is not None:
                self.set_focus(problem.widget)
            return
        self._busy = True
        try:
            reason = await self._submit(self.values())
        finally:
            self._busy = False
        if reason is None:
            self.dismiss(True)
        else:
            self.show_refusal(reason)

    def action_later(self) -> None:
        self.dismiss(False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "enter":
            # Only a one-line field submits on Enter; elsewhere Enter keeps its own
            # meaning (press a button, open a select, a new line in a text area).
            return isinstance(self.focused, Input)
        return True

    async def _catch_up(self) -> None:
        """Return once the focused widget has handled every key already sent to it."""
        widget = self.focused
        if widget is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def mark() -> None:
            if not done.done():
                done.set_result(None)

        # A callback queued behind those keys runs after them.
        if widget.call_later(mark):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, self.CATCH_UP_S)

    async def action_next_field(self) -> None:
        await self._catch_up()
        self.focus_next()

    async def action_previous_field(self) -> None:
        await self._catch_up()
        self.focus_previous()

    async def action_enter(self) -> None:
        await self._catch_up()
        await self.action_submit()

    @on(Input.Submitted)
    async def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_submit()

    @on(Button.Pressed, "#submit")
    async def _submit_pressed(self) -> None:
        await self.action_submit()

    @on(Button.Pressed, "#later")
    def _later_pressed(self) -> None:
        self.action_later()

    @on(Input.Changed)
    @on(Switch.Changed)
    @on(RadioSet.Changed)
    @on(Select.Changed)
    @on(SelectionList.SelectedChanged)
    def _edited(self, event: Any) -> None:
        # A field the operator touched loses its stale message.
        for field in self.fields:
            if field.widget is not None and field.widget is getattr(event, "control", None):
                field.flag(None)


IDENTIFY_LABELS = {
    "serial_number": "Serial number",
    "part_number": "Part number",
    "revision_number": "Revision",
    "batch_number": "Batch",
}


def _identify_field(key: str, label: str, config: UnitField | None, required: bool, value: Any) -> dict[str, Any]:
    config = config or UnitField()
    field: dict[str, Any] = {"type": "text_input", "key": key, "label": label, "required": required}
    field["default_value"] = value if value not in (None, "") else config.default_value
    for name in ("placeholder", "description", "min_length", "max_length", "pattern"):
        if getattr(config, name) is not None:
            field[name] = getattr(config, name)
    return field


def identify_components(unit: UnitInfo | None, last: dict[str, Any]) -> list[dict[str, Any]]:
    """The identify-unit form, the engine's (procedure-format §9): serial and part
    (required), revision and batch if declared, each sub-unit serial (required), then
    the metadata fields (optional, alphabetical), each prefilled from the procedure's
    `default_value`. What the operator typed last for this procedure (all but the
    serials) wins over the default, so scanning a serial and its Enter is all a
    repeat run needs. `unit` None (a station that does not say): serial, part,
    revision and batch, no defaults."""
    known = unit or UnitInfo()
    fields = [_identify_field("serial_number", "Serial number", known.serial_number, True, None)]
    fields[0].setdefault("placeholder", "scan or type")
    fields.append(_identify_field("part_number", "Part number", known.part_number, True, last.get("part_number")))
    for name in ("revision_number", "batch_number"):
        config = getattr(known, name)
        if unit is None or config is not None:
            fields.append(_identify_field(name, IDENTIFY_LABELS[name], config, False, last.get(name)))
    for sub_unit in known.sub_units:
        fields.append(
            _identify_field(f"sub_unit:{sub_unit.key}", f"{sub_unit.label} serial number", sub_unit.serial_number, True, None)
        )
    for key in sorted(known.metadata):
        fields.append(_identify_field(f"metadata:{key}", key, known.metadata[key], False, last.get(f"metadata:{key}")))
    return fields
