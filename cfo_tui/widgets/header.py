"""The summary bar: active account, when the others are usable again, dispatch mode and the counts."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

from cfo_tui.widgets.fleet import fleet_badge
from cfo_tui.widgets.format import clock, count, elapsed
from engine.snapshot import Snapshot
from engine.state import STALLED


def exhausted(snap: Snapshot, now: float) -> bool:
    """Every account is waiting for its limit to reset."""
    return bool(snap.accounts) and all(at is not None and at > now for at in snap.accounts.values())


def _accounts_line(snap: Snapshot, now: float, engine_note: str | None) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    if snap.dispatch == "paused":
        line.append(" ■ PAUSED ", "bold black on yellow")
    else:
        line.append(" ▶ RUNNING ", "bold black on green")
    line.append("  ")
    if snap.fleet is not None:
        text, style = fleet_badge(snap.fleet, snap.in_fleet)
        line.append(text, style)
        line.append("  ")
    if engine_note:
        line.append(f" {engine_note} ", "bold white on red")
        line.append("  ")
    if exhausted(snap, now):
        first = min(a for a in snap.accounts.values() if a is not None)
        name = next(n for n, a in snap.accounts.items() if a == first)
        line.append(" ALL ACCOUNTS EXHAUSTED ", "bold white on red")
        line.append(f"  next: {name} at {clock(first, now, seconds=False)} (in {elapsed(first - now)})")
        return line
    line.append("account ")
    line.append(snap.active_account or "—", "bold")
    for name, at in snap.accounts.items():
        if name == snap.active_account:
            if at is not None and at > now:
                line.append(f" limited until {clock(at, now, seconds=False)}", "yellow")
            continue
        line.append("  ·  ", "dim")
        line.append(name)
        if at is not None and at > now:
            line.append(f" usable at {clock(at, now, seconds=False)} (in {elapsed(at - now)})", "yellow")
        else:
            line.append(" usable now", "green")
    return line


def _starting_line() -> Text:
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    line.append(" … STARTING ", "bold black on cyan")
    line.append("  starting… reading the state, the pool and the queues", "italic")
    return line


def _degraded_line(reason: str, width: int) -> Text:
    """The engine cannot write its state: a full-width line in the error colour, above everything."""
    line = Text(no_wrap=True, overflow="ellipsis", end="", style="bold white on red")
    line.append(" ⚠ DEGRADED: ")
    line.append(reason)
    after = " · no task is claimed until it can write again"
    if line.cell_len + len(after) <= width:
        line.append(after)
    line.pad_right(max(0, width - line.cell_len))
    return line


def _counts_line(snap: Snapshot) -> Text:
    """What is live now, in one format at every width: it fits 80 columns with four-digit counts."""
    stalled = sum(1 for s in snap.sessions if s.state == STALLED)
    counts = [
        ("working", snap.working, "green"),
        ("idle", snap.idle, ""),
        *([("stalled", stalled, "yellow")] if stalled else []),
        ("queued", len(snap.inbox), ""),
        ("blocked", len(snap.blocked), "yellow"),
        ("delegated", len(snap.delegated), ""),
    ]
    line = Text(" ", no_wrap=True, overflow="ellipsis", end="")
    for i, (label, n, style) in enumerate(counts):
        if i:
            line.append(" · ", "dim")
        line.append(count(n), f"bold {style}" if n else "dim")
        line.append(f" {label}", "" if n else "dim")
    return line


def _item(*parts: tuple[str, str]) -> Text:
    return Text.assemble(*parts, no_wrap=True, end="")


def _done_items(snap: Snapshot, now: float) -> list[Text]:
    """Today's outcomes, then the last hour, the median task time and each account since its reset."""
    done, failed = snap.today("completed"), snap.today("failed")
    items = [
        _item((count(done), "bold green" if done else "dim"), (" done today", "" if done else "dim")),
        _item((count(failed), "bold red" if failed else "dim"), (" failed today", "" if failed else "dim")),
    ]
    view = snap.throughput
    if view is None:
        return [*items, _item(("throughput: —", "dim"))]
    hour = "" if view.last_hour else "dim"
    items.append(
        _item((count(view.last_hour), "bold" if view.last_hour else "dim"), (" done in the last hour", hour))
    )
    median = elapsed(view.median_seconds) if view.median_seconds is not None else "—"
    items.append(_item(("median ", ""), (median, "bold")))
    for use in view.accounts:
        since = f"since reset {clock(use.since, now, seconds=False)}" if use.since_reset else "in 5h"
        items.append(
            _item(
                (use.name, "bold" if use.name == snap.active_account else ""),
                (f" {count(use.tasks)} task{'' if use.tasks == 1 else 's'} {elapsed(use.seconds)}", ""),
                (f" {since}", "dim"),
            )
        )
    return items


def _done_line(snap: Snapshot, now: float, width: int) -> Text:
    """The items that fit whole, in order; a `…` says some did not (never a figure cut in two)."""
    line = Text(" ", no_wrap=True, overflow="ellipsis", end="")
    items = _done_items(snap, now)
    for i, item in enumerate(items):
        sep = " · " if i else ""
        more = len(" · …") if i < len(items) - 1 else 0
        if i and line.cell_len + len(sep) + item.cell_len + more > width:
            line.append(" · …", "dim")
            break
        line.append(sep, "dim")
        line.append(item)
    return line


class SummaryBar(Widget):
    """Three lines at the top (four while the engine is degraded), each cut with an ellipsis rather than
    wrapped: the accounts and dispatch, what is live now, and what got done.

    Its size depends on its text only when the degraded line comes or goes; any other update repaints
    it without a layout pass.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Snapshot, float, str | None, bool] | None = None
        self.text = Text()

    def show(
        self, snap: Snapshot, now: float, engine_note: str | None = None, starting: bool = False
    ) -> None:
        """`starting`: the engine has not sent its first snapshot; `snap` is not the pool yet."""
        self._shown = (snap, now, engine_note, starting)
        width = self.content_region.width or 200
        if starting and not engine_note:
            lines = [_starting_line(), Text(""), Text("")]
        else:
            lines = [_accounts_line(snap, now, engine_note), _counts_line(snap), _done_line(snap, now, width)]
        if snap.degraded:
            lines.insert(0, _degraded_line(snap.degraded, width))
        self.set_class(bool(snap.degraded), "-degraded")
        text = Text("\n", end="").join(lines)
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> Text:
        return self.text

    def on_resize(self, event: events.Resize) -> None:
        if self._shown is not None:
            self.show(*self._shown)
