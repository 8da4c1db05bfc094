"""The summary bar: active account, when the others are usable again, dispatch mode and the counts."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

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


def _counts_line(snap: Snapshot, width: int) -> Text:
    stalled = sum(1 for s in snap.sessions if s.state == STALLED)
    counts = [
        ("working", snap.working, "green"),
        ("idle", snap.idle, ""),
        *([("stalled", stalled, "yellow")] if stalled else []),
        ("queued", len(snap.inbox), ""),
        ("blocked", len(snap.blocked), "yellow"),
        ("delegated", len(snap.delegated), ""),
        ("done today", snap.today("completed"), "green"),
        ("failed today", snap.today("failed"), "red"),
    ]
    items = [
        (count(n), label, f"bold {style}" if n else "dim", "" if n else "dim") for label, n, style in counts
    ]
    plain = sum(len(n) + 1 + len(label) for n, label, _, _ in items) + 1
    # Narrower separators before an ellipsis: each count stays readable as number + word.
    separators = [(" · ", "dim"), ("  ", ""), (" ", "")]
    sep, sep_style = next(
        ((s, st) for s, st in separators if plain + len(s) * (len(items) - 1) <= width), separators[-1]
    )
    line = Text(" ", no_wrap=True, overflow="ellipsis", end="")
    for i, (n, label, number_style, label_style) in enumerate(items):
        if i:
            line.append(sep, sep_style)
        line.append(n, number_style)
        line.append(f" {label}", label_style)
    return line


def _throughput_line(snap: Snapshot, now: float) -> Text:
    """Tasks done in the last hour, the median task time, and what each account did since its reset."""
    line = Text(" ", no_wrap=True, overflow="ellipsis", end="")
    view = snap.throughput
    if view is None:
        line.append("throughput: —", "dim")
        return line
    line.append(count(view.last_hour), "bold" if view.last_hour else "dim")
    line.append(" done in the last hour", "" if view.last_hour else "dim")
    line.append(" · ", "dim")
    line.append("median ")
    line.append(elapsed(view.median_seconds) if view.median_seconds is not None else "—", "bold")
    for use in view.accounts:
        line.append(" · ", "dim")
        line.append(use.name, "bold" if use.name == snap.active_account else "")
        line.append(f" {count(use.tasks)} task{'' if use.tasks == 1 else 's'} {elapsed(use.seconds)}")
        since = f"since reset {clock(use.since, now, seconds=False)}" if use.since_reset else "in 5h"
        line.append(f" {since}", "dim")
    return line


class SummaryBar(Widget):
    """Three lines at the top; each is cut with an ellipsis rather than wrapped.

    Its size never depends on its text, so an update repaints it without a layout pass.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Snapshot, float, str | None] | None = None
        self.text = Text()

    def show(self, snap: Snapshot, now: float, engine_note: str | None = None) -> None:
        self._shown = (snap, now, engine_note)
        width = self.content_region.width or 200
        text = Text("\n", end="").join(
            [_accounts_line(snap, now, engine_note), _counts_line(snap, width), _throughput_line(snap, now)]
        )
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> Text:
        return self.text

    def on_resize(self, event: events.Resize) -> None:
        if self._shown is not None:
            self.show(*self._shown)
