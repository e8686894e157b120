"""The run log pane: draws only the lines on screen, from a bounded buffer.

Appending a line costs nothing on screen; `sync()` (called on the console's redraw
tick) updates the scroll extent once for however many lines arrived, so a procedure
that logs as fast as it can never starves the keyboard.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from tofu_tui.tui.state import LEVELS, LogBuffer

# ANSI colour names: they stay readable on a 256-colour (or 16-colour) terminal.
LEVEL_STYLES = {
    "DEBUG": Style(color="bright_black"),
    "INFO": Style(),
    "WARNING": Style(color="yellow"),
    "ERROR": Style(color="red", bold=True),
    "CRITICAL": Style(color="bright_white", bgcolor="red", bold=True),
}


class LogView(ScrollView, can_focus=True):
    """Follows the newest line until the operator scrolls up; End follows again."""

    BINDINGS = [
        Binding("end", "follow", "Follow", show=False),
        Binding("home", "scroll_home", "Top", show=False),
    ]

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    class FollowChanged(Message):
        """The pane stopped or resumed following the newest line."""

    def __init__(self, buffer: LogBuffer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = buffer
        self.follow = True
        self._seen = -1
        self._moving = False  # scrolling on our own, not by the operator
        # Lines never change once logged: keep their drawn strips for the next frames
        # (following the log, each frame shows mostly the lines of the last one).
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(256)
        self._base: Style | None = None

    def sync(self) -> None:
        base = self.rich_style  # once a tick: it walks the ancestors' styles
        if base != self._base:
            self._base = base
            self._strips.clear()
        if self.buffer.version != self._seen:
            self._seen = self.buffer.version
            height = len(self.buffer.visible)
            size = Size(self.scrollable_content_region.width, height)
            window = self.scrollable_content_region.height
            if (height > window) != (self.virtual_size.height > window):
                self.virtual_size = size  # the scrollbar comes or goes: that needs a layout
            elif size != self.virtual_size:
                # Only the scroll extent grew: setting `virtual_size` the usual way would
                # lay out the whole screen on every tick of a log flood.
                self.set_reactive(Widget.virtual_size, size)
                self._scroll_update(size)
            self.refresh()
        if self.follow and self.scroll_y < self.max_scroll_y:
            # Checked every tick: right after a layout the extent may not have allowed it.
            self._moving = True
            try:
                self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
            finally:
                self._moving = False

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._moving:
            return
        # Scrolling up by hand stops following; reaching the bottom resumes it.
        was = self.follow
        if new < old and new < self.max_scroll_y:
            self.follow = False
        elif new >= self.max_scroll_y:
            self.follow = True
        if self.follow != was:
            self.post_message(self.FollowChanged())

    def _top(self) -> int:
        """First line on screen: following, the newest lines fill the pane even
        before the scroll extent has caught up with them."""
        if self.follow:
            return max(len(self.buffer.visible) - self.scrollable_content_region.height, 0)
        return round(self.scroll_offset.y)

    def action_follow(self) -> None:
        if not self.follow:
            self.post_message(self.FollowChanged())
        self.follow = True
        self._moving = True
        try:
            self.scroll_end(animate=False, immediate=True)
        finally:
            self._moving = False
        self.refresh()

    def set_min_level(self, level: str) -> None:
        self.buffer.set_min_level(level)
        self.follow = True
        self.sync()

    def cycle_level(self) -> str:
        level = LEVELS[(LEVELS.index(self.buffer.min_level) + 1) % len(LEVELS)]
        self.set_min_level(level)
        return level

    def render_line(self, y: int) -> Strip:
        index = self._top() + y
        width = self.scrollable_content_region.width
        visible = self.buffer.visible
        if index >= len(visible):
            return Strip.blank(width, self._base if self._base is not None else self.rich_style)
        line = visible[index]
        key = (line.seq, width)
        strip = self._strips.get(key)
        if strip is None:
            base = self._base if self._base is not None else self.rich_style
            strip = Strip([Segment(line.text, base + LEVEL_STYLES.get(line.level, Style()))]).crop_extend(0, width, base)
            self._strips[key] = strip
        return strip
