"""The task filter line: narrows the queue lists as you type; escape clears and hides it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label


class FilterInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear", tooltip="Clear the filter and hide it", id="clear-filter")
    ]

    class Cleared(Message):
        """The operator cleared the filter with escape."""

    def __init__(self) -> None:
        super().__init__(
            placeholder="project, id or title words; enter to keep, escape to clear", compact=True
        )
        # A blinking cursor is a moving part in every screenshot; a steady one reads as well.
        self.set_reactive(FilterInput.cursor_blink, False)

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())


class TaskFilter(Horizontal):
    """A labelled input line; the app listens to its Input.Changed/Submitted and FilterInput.Cleared."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.input = FilterInput()

    def compose(self) -> ComposeResult:
        yield Label("filter tasks:")
        yield self.input
