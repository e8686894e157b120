"""A one-line text widget that redraws without a relayout.

`Static.update` asks for a layout pass each time; the live titles change on every
redraw tick, and a relayout of the whole screen per tick is what would make keys
wait during a log flood.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    DEFAULT_CSS = """
    TextLine { height: 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text != self._text:
            self._text = text
            self.refresh()

    @property
    def text(self) -> Text:
        return self._text

    def render(self) -> Text:
        return self._text
