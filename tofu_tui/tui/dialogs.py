"""Confirmation and help dialogs."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks before something that cannot be undone.

    Only `y` (or the confirm button, which starts unfocused) confirms: the key that
    opened the dialog, pressed again by accident, or an Enter, does nothing harmful.
    """

    BINDINGS: ClassVar = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "No"),
    ]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        width: 64; max-width: 95%; height: auto; border: thick $error;
        background: $surface; padding: 0 1;
    }
    ConfirmScreen #question { text-style: bold; margin: 1 0; }
    ConfirmScreen #buttons { height: auto; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 1; }
    """

    def __init__(self, question: str, detail: str, confirm_label: str) -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            yield Static(Text(self.detail))
            yield Static(Text("y confirms · n or Esc cancels", style="bright_black"))
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)


class HelpScreen(ModalScreen[None]):
    """Every key, built from the bindings themselves so it never drifts."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "close", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > #dialog {
        width: 96; max-width: 98%; height: auto; max-height: 95%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for title, keys in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in keys:
                table.add_row(key, description)
        with VerticalScroll(id="dialog"):
            yield Static(table)
            yield Static(Text("Esc closes", style="bright_black"))

    def action_close(self) -> None:
        self.dismiss(None)
