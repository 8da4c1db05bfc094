"""The pane tail: the selected session's last lines with their colours, and its full-screen zoom."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
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
        self.note: Text | None = None
        """Shown above the pane's lines, wrapped: what the console knows of the session (its last failure)."""

    def render(self) -> RenderableType:
        return Group(self.note, self.text) if self.note is not None else self.text

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

    def show(self, session: str | None, ansi: str, note: Text | None = None) -> None:
        self.session, self._ansi = session, ansi
        self.border_title = f"Tail · {session}" if session else "Tail"
        if note != self.note:
            self.note = note
            self.refresh()
        if session is None:
            self.update(Text("No session selected.", style="dim italic"))
        elif not ansi.strip():
            self.update(Text(f"{session}: nothing captured yet.", style="dim italic"))
        else:
            height = self.content_region.height
            self.update(_last_lines(ansi, max(1, height - self._note_height()) if height > 0 else 0))

    def _note_height(self) -> int:
        width = self.content_region.width
        if self.note is None or width <= 0:
            return 0
        return len(self.note.wrap(self.app.console, width))

    def on_resize(self, event: events.Resize) -> None:
        self.show(self.session, self._ansi, self.note)


class TailScreen(Screen[None]):
    """The selected session's pane, full size; `enter` or `escape` go back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the console", id="unzoom")
    ]

    def compose(self) -> ComposeResult:
        yield PaneTail(id="zoom-tail")
        yield KeysFooter()
