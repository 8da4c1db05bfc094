"""The events pane: the engine's latest events, newest first, optionally only one type."""

from __future__ import annotations

from collections.abc import Sequence

from cfo_tui.widgets.format import clock
from cfo_tui.widgets.table import ColumnSpec, LiveTable, Row
from engine.events import Event

KEPT = 500
"""Events held for the pane; the full history is in events.jsonl."""
SHOWN = 100
"""Rows rendered: the newest of the selected type (a refresh re-diffs them all)."""

EVENT_STYLES: dict[str, str] = {
    "completed": "green",
    "failed": "bold red",
    "swap": "bold magenta",
    "quota_hit": "magenta",
    "all_exhausted": "bold red",
    "auth_failed": "red",
    "launch_failed": "yellow",
    "stalled": "bold yellow",
    "blocked_too_long": "yellow",
    "api_error": "yellow",
    "delegation_fallback": "yellow",
    "requeued": "yellow",
    "paused": "yellow",
    "error": "bold red",
}


def cycle_type(current: str | None, seen: Sequence[str], step: int = 1) -> str | None:
    """The next filter in `[all, *seen]` order: None means every type."""
    choices: list[str | None] = [None, *sorted(set(seen))]
    if current not in choices:
        return None
    return choices[(choices.index(current) + step) % len(choices)]


class EventsTable(LiveTable):
    POSITIONAL = True
    EMPTY = "no events yet"
    COLUMNS = (
        ColumnSpec("time", "Time", 8),
        ColumnSpec("type", "Type", 16),
        ColumnSpec("task", "Task", 14, flex=2, drop=1),
        ColumnSpec("session", "Session", 11, drop=2),
        ColumnSpec("reason", "Detail", 12, flex=3),
    )

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple[int, str | None, int, int] | None = None

    def show(self, numbered: Sequence[tuple[int, Event]], now: float, only: str | None = None) -> int:
        """`numbered`: (sequence number, event), oldest first; the newest SHOWN are rendered, newest first.
        Returns how many match. Nothing is re-rendered unless an event arrived, the type or the minute
        changed (times show seconds, but an old event's time never changes)."""
        matching = [(seq, e) for seq, e in numbered if only is None or e.type == only]
        newest = matching[-1][0] if matching else 0
        key = (newest, only, len(matching), int(now // 60))
        if key == self._shown:
            return len(matching)
        self._shown = key
        rows: list[Row] = [
            (
                str(seq),
                {
                    "time": (clock(e.ts, now), "dim"),
                    "type": (e.type, EVENT_STYLES.get(e.type, "")),
                    "task": (e.task or "", ""),
                    "session": (e.session or "", ""),
                    "reason": (_detail(e), "dim"),
                },
            )
            for seq, e in reversed(matching[-SHOWN:])
        ]
        self.sync(rows)
        return len(matching)


def _detail(event: Event) -> str:
    parts = [event.reason] if event.reason else []
    if event.account and not event.session and event.type != "swap":
        parts.append(f"account {event.account}")
    if event.type == "swap":
        parts.insert(0, f"{event.extra.get('from_account') or '?'} → {event.account}")
    for key in ("provider", "job", "model"):
        value = event.extra.get(key)
        if value:
            parts.append(f"{key} {value}")
    return " · ".join(parts)
