"""The fleet: a badge in the header, and the Fleet screen (`f`) with every host, its sessions and what
each runs, and the hosts that went silent."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cfo_tui.widgets.format import STATE_STYLES
from engine.fleet.record import ago
from engine.snapshot import STOPPED, FleetView


def fleet_badge(fleet: FleetView, in_fleet: int = 0) -> tuple[str, str]:
    """(text, style) for the header: how many hosts are live and how many of this host's tasks the fleet
    runs, or why this host is not in the fleet."""
    out = f" · {in_fleet} out" if in_fleet else ""
    if fleet.state == "connected":
        silent = [p.host for p in fleet.peers if p.lost]
        live = sum(1 for p in fleet.peers if not p.lost and p.dispatch != STOPPED)
        if silent:
            return f" fleet {live} up · {', '.join(silent)} silent{out} ", "bold black on yellow"
        return f" fleet {live} up{out} ", "bold black on green"
    if fleet.state == "connecting":
        return " fleet joining… ", "bold black on cyan"
    return f" fleet {fleet.state.split(':')[0]}{out} ", "bold white on red"


def fleet_table(fleet: FleetView) -> Group:
    """The heading, then a row per host and, under it, a row per session with the task it runs."""
    head = Text(f"{fleet.host} in {fleet.url}", style="bold")
    head.append(f" · {fleet.state} · {fleet.swaps} fleet swap(s)", style="")
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(no_wrap=True)  # host, or session under it
    table.add_column(no_wrap=True)  # seen, or session state
    table.add_column(no_wrap=True, ratio=1, overflow="ellipsis")  # account, or the task it runs
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True, justify="right")
    heads = ("Host", "Seen", "Account · task", "Dispatch", "Working", "Queued")
    table.add_row(*(Text(h, style="bold underline") for h in heads))
    if not fleet.peers:
        table.add_row(Text("no host has published a snapshot yet", style="dim italic"))
    for peer in fleet.peers:
        silent = peer.lost
        name = Text(peer.host + (" (this host)" if peer.host == fleet.host else ""), style="bold")
        seen = Text(("SILENT · " if silent else "") + ago(peer.age), style="bold red" if silent else "dim")
        table.add_row(
            name,
            seen,
            peer.account or "—",
            Text(peer.dispatch, style="yellow" if peer.dispatch != "running" else ""),
            f"{peer.working}/{peer.sessions}",
            str(peer.queued),
        )
        if peer.degraded:
            table.add_row("", Text(f"degraded: {peer.degraded}", style="bold red"))
        for session, state, task in peer.detail:
            table.add_row(
                Text(f"  {session}", style="dim"),
                Text(state, style=STATE_STYLES.get(state, "")),
                Text(task or "", style=""),
            )
    return Group(head, Text(""), table)


class FleetScreen(ModalScreen[None]):
    """Every host of the fleet as this host last read it; refreshed once a second."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f,q", "app.pop_screen", "Close", tooltip="Back to the console", id="close-fleet")
    ]

    def __init__(self, view: Callable[[], FleetView | None]) -> None:
        super().__init__()
        self._view = view
        self._body = Static(id="fleet-body")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="fleet") as box:
            box.border_title = "cfo — fleet"
            box.border_subtitle = "escape to close"
            yield self._body

    def on_mount(self) -> None:
        self._refresh_view()
        self.set_interval(1.0, self._refresh_view)

    def _refresh_view(self) -> None:
        view = self._view()
        self._body.update(fleet_table(view) if view is not None else Text("no fleet: section in the config"))
