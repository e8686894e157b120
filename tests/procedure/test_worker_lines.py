"""The worker's line splitting and log bounds, in process (no subprocess needed)."""

from __future__ import annotations

from typing import Any

from tofu_tui.procedure import worker as w


class _Channel:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sent.append(data)


def _lines(chunks: list[str]) -> list[str]:
    sink = w.LogSink(None, "/proc")
    got: list[str] = []
    sink.active = True
    sink.log_lines = lambda level, lines: got.extend(lines)  # type: ignore[method-assign]
    splitter = w.LineSplitter(sink, "INFO")
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.finish()
    return got


def test_lines_across_writes() -> None:
    assert _lines(["ab", "c\nd", "e\n", "\n", "  f  \n", "tail"]) == ["abc", "de", "f", "tail"]


def test_print_line_ends() -> None:
    assert _lines(["one", "\n", "", "\n", "two", "\n"]) == ["one", "two"]


def test_overlong_lines_are_cut_with_a_marker() -> None:
    (line,) = _lines(["x" * (w.LINE_CAP + 5), "y" * 10, "\n"])
    assert line.startswith("x" * 100) and line.endswith("[... 15 characters cut]")
    (single,) = _lines(["z" * (w.LINE_CAP + 7) + "\n"])
    assert single.endswith("[... 7 characters cut]") and len(single) < w.LINE_CAP + 40


def test_carriage_returns_keep_the_visible_text() -> None:
    assert _lines(["\r10%", "\r50%", "\r100%\n", "dos\r\n"]) == ["100%", "dos"]


def test_sink_keeps_head_and_tail_and_counts_the_rest(monkeypatch: Any) -> None:
    monkeypatch.setattr(w, "HEAD_LINES", 3)
    monkeypatch.setattr(w, "TAIL_LINES", 2)
    channel = _Channel()
    sink = w.LogSink(channel, "/proc")  # type: ignore[arg-type]
    sink.tail = w.collections.deque(maxlen=2)
    sink.begin()
    for i in range(10):
        sink.log("INFO", f"l{i}", "/proc/phases/a.py", i)
    done: dict[str, Any] = {"t": "done"}
    sink.end(done)
    import json

    messages = [json.loads(x) for x in b"".join(channel.sent).decode().splitlines()]
    logs = [entry for m in messages if m["t"] == "log" for entry in m["l"]]
    texts = [entry[2] for entry in logs]
    assert texts[:3] == ["l0", "l1", "l2"]
    assert "5 log lines omitted" in texts[3]
    assert texts[4:] == ["l8", "l9"]
    assert logs[0][3] == "phases/a.py"  # relative to the procedure directory
    assert messages[-1]["t"] == "done" and messages[-1]["dropped"] == 5
    sink.log("INFO", "after the job")  # inactive: ignored
    assert len(channel.sent) == 1
