"""The help screen: every key, and what each session state word means."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cfo_tui.widgets.format import STATE_STYLES

KEYS: tuple[tuple[str, str], ...] = (
    ("p", "pause or resume dispatch; running tasks go on either way"),
    ("c", "force-complete the selected session's task (asks first)"),
    ("s", "swap to the next usable account (asks first, naming it)"),
    ("enter", "zoom the selected session's pane; enter or escape to come back"),
    ("/", "filter the task lists; enter keeps the filter, escape clears it"),
    ("t", "Events pane: show one event type, then the next, then all"),
    ("↑ ↓", "select a session: the Tail pane follows it"),
    ("[ ]", "previous / next tab on a small terminal"),
    ("tab", "move between panes"),
    ("f", "the fleet: every host, its sessions and what each runs (with a fleet: section)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help; escape or ? closes it"),
    ("q  ctrl+c", "quit: the engine stops and saves its state"),
)
STATES: tuple[tuple[str, str], ...] = (
    ("working", "the agent is on a task"),
    ("launching", "the agent is starting and receiving its task"),
    ("recycling", "the task ended; the agent exits for a fresh context"),
    ("idle", "ready for the next task"),
    ("stalled", "no progress on screen for a long time"),
    ("out of pool", "the account's login failed; back after the engine restarts"),
)


def help_text() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row(Text("Keys", style="bold underline"), "")
    for key, what in KEYS:
        table.add_row(Text(key, style="bold cyan"), what)
    table.add_row("", "")
    table.add_row(Text("States", style="bold underline"), "")
    for state, what in STATES:
        table.add_row(Text(state, style=STATE_STYLES.get(state, "")), what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,question_mark,q",
            "app.pop_screen",
            "Close",
            tooltip="Back to the console",
            id="close-help",
        )
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "cfo — help"
            box.border_subtitle = "escape to close"
            yield Static(help_text())
