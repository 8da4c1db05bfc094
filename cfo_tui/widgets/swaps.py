"""The swap history: each account failover with what triggered it, where, the detail and what it resumed."""

from __future__ import annotations

from collections.abc import Sequence

from cfo_tui.widgets.format import clock
from cfo_tui.widgets.table import ColumnSpec, LiveTable, Row
from engine.snapshot import SwapRow


def _took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.0f}m"


class SwapsTable(LiveTable):
    EMPTY = "no account swap yet"
    COLUMNS = (
        ColumnSpec("time", "Time", 8),
        ColumnSpec("swap", "From → to", 20),
        ColumnSpec("trigger", "Trigger", 13, drop=2),
        ColumnSpec("session", "Session", 11, drop=3),
        ColumnSpec("detail", "Detail", 12, flex=4, drop=4),
        ColumnSpec("resumed", "Resumed", 7, drop=1),
        ColumnSpec("took", "Took", 5, drop=1),
    )

    def show(self, swaps: Sequence[SwapRow], now: float) -> None:
        """Newest first."""
        rows: list[Row] = [
            (
                f"{w.at!r}:{w.to_account}",
                {
                    "time": (clock(w.at, now), "dim"),
                    "swap": (f"{w.from_account or '—'} → {w.to_account}", "bold"),
                    "trigger": (w.trigger or "—", "yellow"),
                    "session": (w.trigger_session or "—", "" if w.trigger_session else "dim"),
                    "detail": (" · ".join(x for x in (w.snippet, w.fleet) if x), "dim"),
                    "resumed": (str(len(w.sessions_resumed)), ""),
                    "took": (_took(w.duration), "dim"),
                },
            )
            for w in reversed(swaps)
        ]
        self.sync(rows)
