"""The 90-day uptime sparkline: one bar per day, never averaged.

A day with a short outage still reads ~98 %, which an average or a bar height would
hide; the colour steps at 100 %, 99 % and 90 % make every outage day stand out. When the panel
is narrower than 90 columns the days wrap onto more rows instead of being merged.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from tofu_tui.models.status import Uptime

BAR = "█"
LABEL_WIDTH = 7  # "Nov 28 "
LEGEND = [("100%", 1.0), ("≥99%", 0.995), ("≥90%", 0.95), ("<90%", 0.5)]
LEGEND_WIDTH = 3 + sum(len(label) + 4 for label, _ in LEGEND)


def day_style(uptime: float | None) -> str:
    # Fixed 256-palette colours for the middle bands: a theme's "yellow" can render
    # orange and then 99.5 % and 95 % would look alike.
    if uptime is None:
        return "bright_black"
    if uptime >= 0.99999:
        return "green"
    if uptime >= 0.99:
        return "gold1"
    if uptime >= 0.9:
        return "dark_orange"
    return "red"


def day_bar(uptime: float | None) -> str:
    # Every day gets a full bar: a height proportional to uptime would make a total
    # outage the smallest mark on the line. The colour carries the severity.
    return "·" if uptime is None else BAR


def format_pct(value: float | None) -> str:
    if value is None:
        return "—"
    pct = value * 100
    if pct >= 99.995:
        return "100%"
    return f"{pct:.2f}%"


def _per_row(days: int, width: int) -> int:
    rows = math.ceil(days / max(width - LABEL_WIDTH, 10))
    return math.ceil(days / rows)


def uptime_height(uptime: Uptime, width: int, *, summary: bool = True) -> int:
    days = len(uptime.days[-90:])
    if not days:
        return 2 if summary else 1
    return int(summary) + math.ceil(days / _per_row(days, width))


def uptime_summary(uptime: Uptime) -> Text:
    days = uptime.days[-90:]
    text = Text(no_wrap=True, overflow="crop")
    text.append("24 h ", style="bold")
    text.append(format_pct(uptime.last_24h), style=day_style(uptime.last_24h))
    text.append("  7 d ", style="bold")
    text.append(format_pct(uptime.last_7d), style=day_style(uptime.last_7d))
    text.append("  90 d ", style="bold")
    text.append(format_pct(uptime.last_90d), style=day_style(uptime.last_90d))
    outages = sum(1 for day in days if day.uptime is not None and day.uptime < 0.99999)
    text.append(f"   {outages} day{'s' if outages != 1 else ''} with downtime", style="bright_black" if not outages else "")
    return text


def render_uptime(uptime: Uptime, width: int, *, summary: bool = True) -> Text:
    """The summary line (unless shown elsewhere), then the bars."""
    days = uptime.days[-90:]
    text = uptime_summary(uptime) if summary else Text(no_wrap=True, overflow="crop")
    if not days:
        text.append("\nno uptime recorded yet", style="bright_black")
        return text
    per_row = _per_row(len(days), width)
    for start in range(0, len(days), per_row):
        chunk = days[start : start + per_row]
        if start or summary:
            text.append("\n")
        text.append(f"{chunk[0].date:%b %d} ", style="bright_black")
        for day in chunk:
            text.append(day_bar(day.uptime), style=day_style(day.uptime))
        if width >= LABEL_WIDTH * 2 + per_row + LEGEND_WIDTH:
            text.append(f" {chunk[-1].date:%b %d}", style="bright_black")
            if start == 0:
                text.append("   ")
                for label, sample in LEGEND:
                    text.append("█", style=day_style(sample))
                    text.append(f" {label}  ", style="bright_black")
    return text


class UptimePanel(Widget):
    DEFAULT_CSS = """
    UptimePanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._uptime = Uptime()
        self.summary = True  # False: the caller shows `uptime_summary` elsewhere (a title)

    def set_summary(self, summary: bool) -> None:
        if summary != self.summary:
            self.summary = summary
            self.refresh(layout=True)

    def set_uptime(self, uptime: Uptime) -> None:
        if uptime != self._uptime:
            self._uptime = uptime
            self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return uptime_height(self._uptime, width, summary=self.summary)

    def render(self) -> Text:
        return render_uptime(self._uptime, self.content_size.width or 90, summary=self.summary)
