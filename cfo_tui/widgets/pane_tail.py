"""The pane tail: the selected session's last lines with their colours, and its full-screen zoom."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget

from cfo_tui.widgets.footer import KeysFooter


def _last_lines(ansi: str, keep: int) -> Text:
    lines = Text.from_ansi(ansi, no_wrap=True, overflow="ellipsis", end="").split("\n", allow_blank=True)
    # A capture is padded with the empty rows below the cursor; the tail should end on content.
    while lines and not lines[-1].plain.strip():
        lines.pop()
    shown = list(lines)[-keep:] if keep > 0 else list(lines)
    return Text("\n", end="").join(shown)


class PaneTail(Widget):
    """Shows what `Engine.pane_tail` returned; the app decides when to fetch and for whom.

    Its size comes from the layout, never from the text, so a new capture repaints it without a
    layout pass.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.session: str | None = None
        self._ansi = ""
        self.text = Text()

    def render(self) -> Text:
        return self.text

    def update(self, text: Text) -> None:
        if text != self.text:
            self.text = text
            self.refresh()

    def on_mount(self) -> None:
        self.show(None, "")

    @property
    def lines_wanted(self) -> int:
        """How many lines fill the widget (at least a screenful of a typical pane)."""
        return max(40, self.content_region.height)

    def show(self, session: str | None, ansi: str) -> None:
        self.session, self._ansi = session, ansi
        self.border_title = f"Tail · {session}" if session else "Tail"
        if session is None:
            self.update(Text("No session selected.", style="dim italic"))
        elif not ansi.strip():
            self.update(Text(f"{session}: nothing captured yet.", style="dim italic"))
        else:
            self.update(_last_lines(ansi, self.content_region.height))

    def on_resize(self, event: events.Resize) -> None:
        self.show(self.session, self._ansi)


class TailScreen(Screen[None]):
    """The selected session's pane, full size; `enter` or `escape` go back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the console", id="unzoom")
    ]

    def compose(self) -> ComposeResult:
        yield PaneTail(id="zoom-tail")
        yield KeysFooter()
